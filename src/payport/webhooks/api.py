"""The provider webhook endpoint: verify the raw body, store once, answer 200."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from payport.errors import PayportError
from payport.http import FastJSONResponse, RuntimeDep
from payport.webhooks.service import parse_event
from payport.webhooks.signature import verify_signature

router = APIRouter(tags=["webhooks"])


@router.post("/stripe-webhook", summary="Stripe-signed provider events")
@router.post("/api/stripe-webhook", include_in_schema=False)
async def stripe_webhook(request: Request, runtime: RuntimeDep) -> JSONResponse:
    body = await request.body()
    try:
        verify_signature(
            body,
            request.headers.get("stripe-signature"),
            await runtime.webhook_secrets(),
            tolerance_s=runtime.settings.webhook_tolerance_s,
        )
        parsed = parse_event(body)
    except PayportError as error:
        return FastJSONResponse(
            {"success": False, "error": error.code, "message": error.message}, status_code=400
        )
    created = await runtime.event_recorder.record(parsed, body)
    if created:
        runtime.webhooks_ready.notify()
    return FastJSONResponse({"received": True, "duplicate": not created})
