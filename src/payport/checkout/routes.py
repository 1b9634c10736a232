"""Seed 004's routes: create a session, read a payment's status, take Stripe's webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse

from payport.checkout import service
from payport.checkout.auth import AuthenticatedUser
from payport.checkout.errors import InvalidWebhookSignature
from payport.checkout.schemas import (
    PaymentStatusView,
    SessionCreated,
    order_id_from_body,
    payment_status_view,
)
from payport.checkout.worker import CheckoutRuntime
from payport.errors import InvalidSignature
from payport.http import RuntimeDep
from payport.webhooks.service import parse_event
from payport.webhooks.signature import verify_signature

router = APIRouter(prefix="/payments", tags=["checkout (seed 004)"])


async def get_checkout(runtime: RuntimeDep) -> CheckoutRuntime:
    return runtime.checkout


CheckoutDep = Annotated[CheckoutRuntime, Depends(get_checkout)]


async def current_user(request: Request, checkout: CheckoutDep) -> AuthenticatedUser:
    """The `sub` of a valid Bearer JWT; 401 otherwise."""
    return checkout.verifier.verify(request.headers.get("authorization"))


UserDep = Annotated[AuthenticatedUser, Depends(current_user)]


@router.post("/create-session", response_model=SessionCreated)
async def create_session(request: Request, user: UserDep, checkout: CheckoutDep) -> SessionCreated:
    """A hosted payment page for a PENDING order of the caller's; the same one while open."""
    order_id = order_id_from_body(await request.body())
    opened = await service.create_session(checkout.ctx, user=user, order_id=order_id)
    return SessionCreated(checkoutUrl=opened.checkout_url, sessionId=opened.session_id)


@router.get("/status/{order_id}", response_model=PaymentStatusView)
async def payment_status(order_id: str, user: UserDep, checkout: CheckoutDep) -> PaymentStatusView:
    payment = await service.payment_for_order(checkout.ctx, user=user, order_id=order_id)
    return payment_status_view(payment)


@router.post("/webhook", summary="Stripe-signed checkout events")
async def webhook(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Verified on the raw body and stored once by event id; the worker applies it."""
    body = await request.body()
    try:
        verify_signature(
            body,
            request.headers.get("stripe-signature"),
            await runtime.webhook_secrets(),
            tolerance_s=runtime.settings.webhook_tolerance_s,
        )
    except InvalidSignature:
        raise InvalidWebhookSignature() from None
    created = await runtime.event_recorder.record(parse_event(body), body)
    if created:
        runtime.webhooks_ready.notify()
    return JSONResponse({"received": True, "duplicate": not created})


@router.get("/checkout/success", response_class=HTMLResponse, include_in_schema=False)
async def checkout_success() -> HTMLResponse:
    """Where the hosted page sends a customer who paid, unless CHECKOUT_SUCCESS_URL is set."""
    return _result_page("Payment received", "Thank you. Your order is being confirmed.")


@router.get("/checkout/cancel", response_class=HTMLResponse, include_in_schema=False)
async def checkout_cancel() -> HTMLResponse:
    return _result_page("Payment not completed", "No money was taken for this order.")


def _result_page(title: str, message: str) -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title></head><body><h1>{title}</h1><p>{message}</p></body></html>",
        headers={"Cache-Control": "no-store"},
    )
