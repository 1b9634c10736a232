"""The local transport over HTTP: put commands in, read events out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from payport.errors import PayportError
from payport.http import FastJSONResponse, RuntimeDep, problem_from_error
from payport.messaging.envelope import parse_envelope
from payport.messaging.local import list_events

router = APIRouter(prefix="/api/v1", tags=["commands and events"])


@router.post("/commands", status_code=202, summary="Submit a CONTRACT.md command envelope")
async def submit_command(request: Request, runtime: RuntimeDep) -> JSONResponse:
    body = await request.body()
    try:
        envelope = parse_envelope(body)
    except PayportError as error:
        error.http_status = 400
        return problem_from_error(error)
    await runtime.bus.submit(envelope, body)
    return FastJSONResponse(
        {"accepted": True, "type": envelope.type, "correlation_id": envelope.correlation_id},
        status_code=202,
    )


@router.get("/events", summary="Published events in publish order, after a cursor")
async def read_events(
    runtime: RuntimeDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    async with runtime.db.read() as session:
        events, cursor = await list_events(session, after=after, limit=limit)
    return FastJSONResponse(
        {"object": "list", "data": events, "next_cursor": cursor, "has_more": len(events) == limit}
    )
