"""Seed 003's payment routes: create an intent, confirm it, a user's history.

They are a second door to the core payments domain, not a second implementation:
`intent` runs `authorize_payment` (the card is held), `confirm` runs
`capture_payment` (automatic capture: the platform keeps the funds). Escrow
payments that end in a transfer to a runner use `POST /api/v1/payments` and
`/release` instead. Amounts arrive in major units as seed 003's clients send
them and are parsed exactly from the JSON text, or as `amount_minor`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from payport.billing.schemas import (
    MajorAmount,
    StrictBody,
    one_amount_minor,
    parse_body,
    requested_currency,
)
from payport.http import FastJSONResponse, RuntimeDep, documented_body
from payport.idempotency import run_idempotently
from payport.money import MAX_AMOUNT_MINOR
from payport.payments import repository
from payport.payments.api import command_result, run_command
from payport.payments.states import PaymentStatus
from payport.payments.views import api_payment, payment_row

router = APIRouter(prefix="/api/v1/payments", tags=["payments (seed 003)"])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


class IntentBody(StrictBody):
    user_id: str = Field(min_length=1, max_length=255)
    amount: MajorAmount = None
    amount_minor: int | None = Field(default=None, ge=1, le=MAX_AMOUNT_MINOR, strict=True)
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    payment_method_id: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=1000)
    order_id: str | None = Field(default=None, min_length=1, max_length=255)


def intent_amount_minor(body: IntentBody, currency: str) -> int:
    return one_amount_minor(body.amount, body.amount_minor, currency, name="amount")


def _seed_view(view: dict[str, Any]) -> dict[str, Any]:
    """The payment as seed 003's clients read it: `payment_id` next to payport's `id`."""
    return {"payment_id": view.get("id")} | view if "id" in view else view


@router.post(
    "/intent",
    status_code=201,
    summary="Create a payment intent (the card is authorized; confirm captures it)",
    openapi_extra=documented_body(IntentBody),
)
async def create_intent(
    request: Request, runtime: RuntimeDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    body = parse_body(IntentBody, await request.body())
    currency = requested_currency(body.currency, runtime.settings.default_currency)
    amount = intent_amount_minor(body, currency)
    order_id = body.order_id or f"intent-{uuid.uuid4()}"

    async def produce() -> tuple[int, dict[str, Any]]:
        payload = {
            "order_id": order_id,
            "amount": amount,
            "currency": currency,
            "payment_method_id": body.payment_method_id,
            "customer_id": body.user_id,
            "description": body.description,
        }
        outcome = await run_command(runtime, "authorize_payment", payload, idempotency_key)
        status, view = await command_result(runtime, outcome, created=True)
        return status, _seed_view(view)

    params = {"user_id": body.user_id, "amount": amount, "currency": currency,
              "payment_method_id": body.payment_method_id, "order_id": body.order_id}  # fmt: skip
    return await run_idempotently(
        runtime.db, idempotency_key, route="POST /api/v1/payments/intent", params=params,
        produce=produce,
    )  # fmt: skip


@router.post("/{payment_id}/confirm", summary="Confirm an intent: capture the authorized amount")
async def confirm_payment(
    payment_id: str, runtime: RuntimeDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    async with runtime.db.read() as session:
        payment = await repository.get(session, payment_id)
        if payment is not None and payment.payment_status is PaymentStatus.SUCCEEDED:
            return FastJSONResponse(_seed_view(api_payment(payment_row(payment))))

    async def produce() -> tuple[int, dict[str, Any]]:
        payload = {"payment_id": payment_id, "amount_to_capture": None}
        outcome = await run_command(runtime, "capture_payment", payload, idempotency_key)
        status, view = await command_result(runtime, outcome)
        return status, _seed_view(view)

    return await run_idempotently(
        runtime.db, idempotency_key, route=f"confirm {payment_id}", params={}, produce=produce
    )


@router.get("/user/{user_id}", summary="A user's payment history, newest first")
async def payment_history(
    user_id: str,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> JSONResponse:
    async with runtime.db.read() as session:
        rows = await repository.list_page(
            session, order_id=None, customer_id=user_id, status=None, limit=limit + 1,
            starting_after=None,
        )  # fmt: skip
    data = [_seed_view(api_payment(payment_row(row))) for row in rows[:limit]]
    return FastJSONResponse(
        {
            "object": "list",
            "user_id": user_id,
            "data": data,
            "has_more": len(rows) > limit,
            "url": f"/api/v1/payments/user/{user_id}",
        }
    )
