"""Stripe's Checkout Session API, answered with recorded responses by a real HTTP server.

localstripe has no Checkout Sessions, so the Stripe path is covered here: the official SDK
talks HTTP to this server, which answers with Stripe-shaped JSON recorded from Stripe's
API reference (ids, URLs and the request's own amounts filled in) and keeps every request
it got, so a test can check what payport sent. Same Idempotency-Key → same answer, as on
Stripe.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from payport.providers.base import STRIPE_API_VERSION
from tests.checkout.servers import ThreadedApp

SESSION_ID = "cs_test_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0u1v2w3x4y5z6"
INTENT_ID = "pi_3QcqwlP38n9KZLVv1x2y3z4A"

# GET/POST /v1/checkout/sessions, as Stripe answers in test mode (trimmed of nulls that
# payport never reads; every field payport reads is here with Stripe's type).
RECORDED_SESSION: dict[str, Any] = {
    "id": SESSION_ID,
    "object": "checkout.session",
    "after_expiration": None,
    "allow_promotion_codes": None,
    "amount_subtotal": 0,
    "amount_total": 0,
    "automatic_tax": {"enabled": False, "liability": None, "status": None},
    "billing_address_collection": None,
    "cancel_url": None,
    "client_reference_id": None,
    "created": 0,
    "currency": "usd",
    "customer": None,
    "customer_creation": "if_required",
    "customer_details": None,
    "customer_email": None,
    "expires_at": 0,
    "invoice": None,
    "livemode": False,
    "locale": None,
    "metadata": {},
    "mode": "payment",
    "payment_intent": None,
    "payment_method_types": ["card"],
    "payment_status": "unpaid",
    "status": "open",
    "success_url": None,
    "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    "ui_mode": "hosted",
    "url": f"https://checkout.stripe.com/c/pay/{SESSION_ID}#fidkdWxOYHwnPyd1blpxYHZxWjA0",
}

RECORDED_DECLINED_INTENT: dict[str, Any] = {
    "id": INTENT_ID,
    "object": "payment_intent",
    "amount": 0,
    "amount_capturable": 0,
    "amount_received": 0,
    "capture_method": "automatic_async",
    "client_secret": f"{INTENT_ID}_secret_V4o0kC6cE2lZ4a5b6c7d8e9f0",
    "confirmation_method": "automatic",
    "created": 0,
    "currency": "usd",
    "last_payment_error": {
        "code": "card_declined",
        "decline_code": "generic_decline",
        "doc_url": "https://docs.stripe.com/error-codes/card-declined",
        "message": "Your card was declined.",
        "type": "card_error",
    },
    "latest_charge": "ch_3QcqwlP38n9KZLVv1a2b3c4d",
    "livemode": False,
    "metadata": {},
    "next_action": None,
    "payment_method": None,
    "status": "requires_payment_method",
}


@dataclass
class Recorded:
    requests: list[dict[str, Any]] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)  # by idempotency key


def nested(form: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`a[b][0][c]=v`) back into a dict, lists keyed by index."""
    root: dict[str, Any] = {}
    for key, value in form:
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return root


def build_recorded_stripe(recorded: Recorded) -> FastAPI:
    app = FastAPI()

    def keep(request: Request, form: dict[str, Any]) -> None:
        recorded.requests.append({
            "method": request.method, "path": request.url.path, "form": form,
            "idempotency_key": request.headers.get("idempotency-key"),
            "authorization": request.headers.get("authorization"),
            "stripe_version": request.headers.get("stripe-version"),
        })  # fmt: skip

    @app.post("/v1/checkout/sessions")
    async def create(request: Request) -> JSONResponse:
        form = nested(parse_qsl((await request.body()).decode()))
        keep(request, form)
        key = request.headers.get("idempotency-key") or ""
        if key in recorded.replies:
            return JSONResponse(recorded.replies[key])
        session = copy.deepcopy(RECORDED_SESSION)
        lines = form["line_items"].values()
        total = sum(int(i["price_data"]["unit_amount"]) * int(i["quantity"]) for i in lines)
        session.update(
            amount_subtotal=total, amount_total=total, created=int(time.time()),
            currency=form["line_items"]["0"]["price_data"]["currency"],
            expires_at=int(form["expires_at"]), success_url=form["success_url"],
            cancel_url=form["cancel_url"], client_reference_id=form["client_reference_id"],
            metadata=form.get("metadata", {}), customer_email=form.get("customer_email"),
        )  # fmt: skip
        recorded.sessions[session["id"]] = session
        recorded.replies[key] = session
        return JSONResponse(session)

    @app.get("/v1/checkout/sessions/{session_id}")
    async def retrieve(session_id: str, request: Request) -> JSONResponse:
        keep(request, {})
        return JSONResponse(recorded.sessions[session_id])

    @app.post("/v1/checkout/sessions/{session_id}/expire")
    async def expire(session_id: str, request: Request) -> JSONResponse:
        keep(request, {})
        session = recorded.sessions[session_id]
        if session["status"] != "open":
            message = 'Only Checkout Sessions with a status in ["open"] can be expired.'
            error = {"type": "invalid_request_error", "message": message}
            return JSONResponse({"error": error}, status_code=400)
        session["status"] = "expired"
        return JSONResponse(session)

    @app.get("/v1/payment_intents/{intent_id}")
    async def intent(intent_id: str, request: Request) -> JSONResponse:
        keep(request, {})
        session = next(iter(recorded.sessions.values()))
        pi = copy.deepcopy(RECORDED_DECLINED_INTENT)
        pi.update(amount=session["amount_total"], metadata=session["metadata"])
        return JSONResponse(pi)

    return app


def recorded_event(event_type: str, obj: dict[str, Any], *, event_id: str) -> dict[str, Any]:
    """An event envelope as Stripe delivers it."""
    return {
        "id": event_id,
        "object": "event",
        "api_version": STRIPE_API_VERSION,
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


class RecordedStripe(ThreadedApp):
    def __init__(self) -> None:
        self.recorded = Recorded()
        super().__init__(build_recorded_stripe(self.recorded))
