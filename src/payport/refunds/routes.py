"""Refund routes under /api/v1 (seed 003's create and process, plus approve and reject)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from payport.billing.schemas import parse_body
from payport.db import utcnow
from payport.http import FastJSONResponse, RuntimeDep, documented_body
from payport.refunds import service
from payport.refunds.schemas import ApproveBody, RefundBody, RejectBody
from payport.refunds.views import refund_view

router = APIRouter(prefix="/api/v1/refunds", tags=["refunds"])


@router.post(
    "",
    status_code=201,
    summary="Request a full or partial refund of a captured payment",
    openapi_extra=documented_body(RefundBody),
)
async def create_refund(request: Request, runtime: RuntimeDep) -> JSONResponse:
    body = parse_body(RefundBody, await request.body())
    async with runtime.db.transaction() as session:
        refund = await service.request_refund(
            session, body, approval_threshold_minor=runtime.settings.refund_approval_threshold
        )
        view = refund_view(refund)
    runtime.outbox_ready.notify()
    return FastJSONResponse(view, status_code=201)


@router.get("/{refund_id}", summary="Retrieve a refund")
async def get_refund(refund_id: str, runtime: RuntimeDep) -> JSONResponse:
    async with runtime.db.read() as session:
        refund = await service.get_refund(session, refund_id)
        return FastJSONResponse(refund_view(refund))


@router.get("", summary="A payment's refunds, oldest first")
async def list_refunds(payment_id: str, runtime: RuntimeDep) -> JSONResponse:
    async with runtime.db.read() as session:
        rows = await service.refunds_of(session, payment_id)
        data = [refund_view(row) for row in rows]
    return FastJSONResponse({"object": "list", "data": data, "has_more": False})


@router.post("/{refund_id}/approve", summary="Approve a refund waiting for approval")
async def approve_refund(refund_id: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
    body = parse_body(ApproveBody, await request.body(), optional=True)
    async with runtime.db.transaction() as session:
        refund = await service.get_refund(session, refund_id, for_update=True)
        service.approve(session, refund, by=body.approved_by, at=utcnow())
        view = refund_view(refund)
    runtime.outbox_ready.notify()
    return FastJSONResponse(view)


@router.post("/{refund_id}/reject", summary="Reject a refund waiting for approval")
async def reject_refund(refund_id: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
    body = parse_body(RejectBody, await request.body(), optional=True)
    async with runtime.db.transaction() as session:
        refund = await service.get_refund(session, refund_id, for_update=True)
        service.reject(session, refund, reason=body.reason)
        view = refund_view(refund)
    runtime.outbox_ready.notify()
    return FastJSONResponse(view)


# A refund still `processing` got no answer from the provider: processing again resumes it.
_PROCESSED_STATUS = {"succeeded": 200, "failed": 402, "processing": 503}


@router.post("/{refund_id}/process", summary="Execute an approved refund through the provider")
async def process_refund(refund_id: str, runtime: RuntimeDep) -> JSONResponse:
    view = await service.process_refund(runtime.db, runtime.provider, refund_id)
    runtime.outbox_ready.notify()
    return FastJSONResponse(view, status_code=_PROCESSED_STATUS[view["status"]])
