"""Checkout Sessions: a hosted page per order that ends `complete` (paid) or `expired`.

Like `intents.py`, every function runs inside one request transaction and records the
webhook events of its change. Paying charges the card at once (automatic capture) with the
core's test-card outcomes. A declined card leaves the session open, as on Stripe (payport
expires it when it cancels the order). Open sessions are listed in the sandbox
state table under `checkout_open:{id}` so the expiry sweep reads only those.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from payport.money import Money
from payport.providers.base import (
    CS_COMPLETE,
    CS_EXPIRED,
    CS_OPEN,
    CS_PAID,
    CS_UNPAID,
    PI_REQUIRES_ACTION,
    PI_SUCCEEDED,
    AuthorizeRequest,
    CheckoutSessionRequest,
    ProviderCardError,
    ProviderInvalidRequest,
)
from payport.providers.sandbox import intents
from payport.providers.sandbox.objects import JSON, new_id, resource_missing, unix
from payport.providers.sandbox.store import RequestContext, SandboxStore

OBJECT_TYPE = "checkout.session"
OPEN_PREFIX = "checkout_open:"
# Stripe's bounds for `expires_at`: 30 minutes to 24 hours after creation.
MIN_LIFETIME_S = 30 * 60
MAX_LIFETIME_S = 24 * 3600


def check_request(request: CheckoutSessionRequest, *, now: datetime) -> str:
    """Stripe's parameter checks, before any transaction; returns the normalized currency."""
    if not request.line_items:
        raise ProviderInvalidRequest(
            "line_items is required in payment mode.", code="parameter_missing", param="line_items"
        )
    for item in request.line_items:
        intents.check_positive(item.quantity, "line_items[quantity]")
        if item.unit_amount_minor < 0:
            raise ProviderInvalidRequest(
                "Invalid non-negative integer", param="line_items[price_data][unit_amount]"
            )
    currency = intents.check_amount(request.amount_total_minor, request.currency)
    lifetime = unix(request.expires_at) - unix(now)
    if not MIN_LIFETIME_S <= lifetime <= MAX_LIFETIME_S:
        raise ProviderInvalidRequest(
            "The `expires_at` timestamp must be between 30 minutes and 24 hours from "
            "Checkout Session creation.",
            param="expires_at",
        )
    return currency


async def create_session(
    ctx: RequestContext, request: CheckoutSessionRequest, currency: str
) -> JSON:
    session_id = new_id("cs_test_", 40)
    metadata = dict(request.metadata)
    session: JSON = {
        "id": session_id, "object": OBJECT_TYPE, "mode": "payment", "status": CS_OPEN,
        "payment_status": CS_UNPAID, "url": f"{ctx.base_url}/sandbox/checkout/{session_id}",
        "amount_subtotal": request.amount_total_minor, "amount_total": request.amount_total_minor,
        "currency": currency, "created": unix(ctx.now), "expires_at": unix(request.expires_at),
        "success_url": request.success_url, "cancel_url": request.cancel_url,
        "client_reference_id": request.client_reference_id, "metadata": metadata,
        "customer_email": request.customer_email, "customer_details": None,
        "payment_intent": None, "livemode": False,
        # Sandbox-only: what the hosted page shows and what the intent will carry.
        "sandbox_line_items": [
            {"name": item.name, "unit_amount": item.unit_amount_minor, "quantity": item.quantity}
            for item in request.line_items
        ],
        "sandbox_intent_metadata": metadata,
    }  # fmt: skip
    await ctx.store.add(session, now=ctx.now)
    await ctx.store.set_state(OPEN_PREFIX + session_id, str(session["expires_at"]))
    return session


async def session_for_update(ctx: RequestContext, session_id: str) -> JSON:
    session = await ctx.store.get(session_id, OBJECT_TYPE, for_update=True)
    if session is None:
        raise resource_missing("checkout.session", session_id)
    return session


async def expire(ctx: RequestContext, session_id: str) -> JSON:
    """Close an open session (the merchant asked, or its time ran out)."""
    session = await session_for_update(ctx, session_id)
    if session["status"] != CS_OPEN:
        raise ProviderInvalidRequest(
            'Only Checkout Sessions with a status in ["open"] can be expired.',
            code="checkout_session_unexpected_state",
        )
    await _close(ctx, session, CS_EXPIRED)
    return session


async def pay(ctx: RequestContext, session_id: str, card: intents.Card, return_url: str) -> JSON:
    """The customer submitted the page: charge the card; success completes the session.

    A decline (`payment_intent.payment_failed`) leaves it open, as Stripe does. A card that
    needs 3-D Secure leaves it open with its intent in `requires_action`;
    `settle_after_authentication` finishes it.
    """
    session = await session_for_update(ctx, session_id)
    if session["status"] != CS_OPEN or session["payment_intent"] is not None:
        raise ProviderInvalidRequest(
            f"This Checkout Session is {session['status']}; it cannot be paid.",
            code="checkout_session_unexpected_state",
        )
    request = AuthorizeRequest(
        amount=Money(session["amount_total"], session["currency"]),
        payment_method="card",
        capture_manually=False,
        return_url=return_url,
        metadata=session["sandbox_intent_metadata"],
    )
    try:
        pi = await intents.create_payment_intent(ctx, request, session["currency"], card)
    except ProviderCardError as declined:
        # Like Stripe, the session stays open for another card; the merchant may expire it.
        session["sandbox_last_error"] = declined.message
        await ctx.store.save(session, now=ctx.now)
        return session
    session["payment_intent"] = pi["id"]
    if pi["status"] == PI_SUCCEEDED:
        await _close(ctx, session, CS_COMPLETE)
    else:
        await ctx.store.save(session, now=ctx.now)
    return session


async def settle_after_authentication(ctx: RequestContext, session_id: str) -> JSON:
    """Back from 3-D Secure: complete the session if the intent succeeded, else close it."""
    session = await session_for_update(ctx, session_id)
    intent_id = session.get("payment_intent")
    if session["status"] != CS_OPEN or intent_id is None:
        return session
    pi = await intents.intent_for_update(ctx, intent_id)
    if pi["status"] == PI_REQUIRES_ACTION:
        return session
    if pi["status"] == PI_SUCCEEDED:
        await _close(ctx, session, CS_COMPLETE)
    else:
        error = pi.get("last_payment_error") or {}
        session["sandbox_last_error"] = error.get("message") or "Authentication failed."
        session["payment_intent"] = None  # another card may be tried
        await ctx.store.save(session, now=ctx.now)
    return session


async def _close(ctx: RequestContext, session: JSON, status: str) -> None:
    session["status"] = status
    if status == CS_COMPLETE:
        session["payment_status"] = CS_PAID
        email = session.get("customer_email")
        session["customer_details"] = {"email": email, "name": None}
    await ctx.store.save(session, now=ctx.now)
    await ctx.store.delete_state(OPEN_PREFIX + session["id"])
    event = "checkout.session.completed" if status == CS_COMPLETE else "checkout.session.expired"
    await ctx.emit(event, _public(session))


def _public(session: JSON) -> JSON:
    """The session as Stripe would send it: without the sandbox's own fields."""
    return {key: value for key, value in session.items() if not key.startswith("sandbox_")}


async def due_for_expiry(store: SandboxStore, *, now: datetime) -> list[str]:
    """Ids of open sessions whose `expires_at` has passed."""
    rows = await store.states_named(OPEN_PREFIX)
    return [name.removeprefix(OPEN_PREFIX) for name, value in rows if int(value) <= unix(now)]


def public_view(session: JSON) -> dict[str, Any]:
    return _public(session)
