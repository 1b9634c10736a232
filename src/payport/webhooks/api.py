"""The provider webhook endpoint: verify the raw body, store once, answer 200."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from payport.http import FastJSONResponse, RuntimeDep
from payport.webhooks.receive import receive_webhook

router = APIRouter(tags=["webhooks"])


@router.post("/stripe-webhook", summary="Stripe-signed provider events")
@router.post("/api/stripe-webhook", include_in_schema=False)
async def stripe_webhook(request: Request, runtime: RuntimeDep) -> JSONResponse:
    receipt = await receive_webhook(
        await request.body(),
        request.headers.get("stripe-signature"),
        secrets=await runtime.webhook_secrets(),
        tolerance_s=runtime.settings.webhook_tolerance_s,
        recorder=runtime.event_recorder,
    )
    if receipt.stored:
        runtime.webhooks_ready.notify()
    return FastJSONResponse(receipt.body, status_code=receipt.status)
