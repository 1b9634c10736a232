"""payport's own payments API under /api/v1: synchronous, Stripe-like, integer minor units."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse

from payport.errors import NotFound
from payport.http import FastJSONResponse, RuntimeDep, problem
from payport.idempotency import run_idempotently
from payport.messaging.envelope import Envelope, now_iso
from payport.payments import repository
from payport.payments.handlers import Outcome, handle_command
from payport.payments.schemas import CaptureBody, CreatePaymentBody, ReleaseBody, RevertBody
from payport.payments.states import PaymentStatus
from payport.payments.views import BY_ID, api_payment, payment_row
from payport.runtime import Runtime

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


async def command_result(
    runtime: Runtime, outcome: Outcome, *, created: bool = False
) -> tuple[int, dict[str, Any]]:
    """The payment after a command, or the problem its payment.failed reported."""
    async with runtime.db.read() as session:
        payment = await repository.get(session, outcome.payment_id or "")
    event = outcome.event
    if event is not None and event.type == "payment.failed":
        payload = event.body["payload"]
        status = {
            "NOT_FOUND": 404,
            "INVALID_STATUS": 409,
            "STRIPE_CARD_ERROR": 402,
            "STRIPE_API_ERROR": 502,
        }.get(payload["error"], 422)
        body = problem(
            status,
            payload["error"],
            payload["message"],
            field=payload.get("field"),
            stripe_code=payload.get("stripe_code"),
            decline_code=payload.get("decline_code"),
            payment=api_payment(payment_row(payment)) if payment else None,
        ).body
        return status, orjson.loads(body)
    if payment is None:
        raise NotFound("payment not found", field="payment_id")
    return (201 if created else 200), api_payment(payment_row(payment))


async def run_command(
    runtime: Runtime, kind: str, payload: dict[str, Any], key: str | None
) -> Outcome:
    envelope = Envelope(
        type=kind, correlation_id=key or str(uuid.uuid4()), timestamp=now_iso(), payload=payload
    )
    return await handle_command(runtime.ctx, envelope, source_ref=None)


async def _act(
    runtime: Runtime, kind: str, payload: dict[str, Any], idempotency_key: str | None
) -> JSONResponse:
    """Run an action on a payment now, once per Idempotency-Key."""

    async def produce() -> tuple[int, dict[str, Any]]:
        return await command_result(
            runtime, await run_command(runtime, kind, payload, idempotency_key)
        )

    route = f"{kind} {payload['payment_id']}"
    return await run_idempotently(
        runtime.db, idempotency_key, route=route, params=payload, produce=produce
    )


@router.post("", status_code=201, summary="Authorize (hold) a payment")
async def create_payment(
    body: CreatePaymentBody, runtime: RuntimeDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    params = body.model_dump()

    async def produce() -> tuple[int, dict[str, Any]]:
        payload = {
            "order_id": body.order_id,
            "amount": body.amount,
            "currency": body.currency,
            "payment_method_id": body.payment_method,
            "customer_id": body.customer_user_id or body.customer,
            "description": body.description,
            "return_url": body.return_url,
        }
        outcome = await run_command(runtime, "authorize_payment", payload, idempotency_key)
        if body.customer and body.customer_user_id:
            await _set_provider_customer(runtime, outcome.payment_id, body.customer)
        return await command_result(runtime, outcome, created=True)

    return await run_idempotently(
        runtime.db, idempotency_key, route="POST /api/v1/payments", params=params, produce=produce
    )


async def _set_provider_customer(runtime: Runtime, payment_id: str | None, customer: str) -> None:
    async with runtime.db.transaction() as session:
        payment = await repository.get(session, payment_id or "")
        if payment is not None and payment.provider_customer_id is None:
            payment.provider_customer_id = customer


@router.get("/{payment_id}", summary="Retrieve a payment")
async def get_payment(payment_id: str, runtime: RuntimeDep) -> JSONResponse:
    row = await runtime.db.fetch_one(BY_ID, {"payment_id": payment_id})
    if row is None:
        return problem(404, "NOT_FOUND", f"payment {payment_id} not found", field="payment_id")
    return FastJSONResponse(api_payment(row))


@router.get("", summary="List payments, newest first")
async def list_payments(
    runtime: RuntimeDep,
    order_id: str | None = None,
    customer_id: str | None = None,
    status: PaymentStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: str | None = None,
) -> JSONResponse:
    async with runtime.db.read() as session:
        cursor = None
        if starting_after:
            cursor = await repository.get(session, starting_after)
            if cursor is None:
                return problem(
                    400, "INVALID_PAYLOAD", "unknown starting_after payment", field="starting_after"
                )
        rows = await repository.list_page(
            session,
            order_id=order_id,
            customer_id=customer_id,
            status=status.value if status else None,
            limit=limit + 1,
            starting_after=cursor,
        )
    data = [api_payment(payment_row(p)) for p in rows[:limit]]
    return FastJSONResponse(
        {"object": "list", "data": data, "has_more": len(rows) > limit, "url": "/api/v1/payments"}
    )


@router.post("/{payment_id}/capture", summary="Capture for the platform, without a transfer")
async def capture_payment(
    payment_id: str,
    runtime: RuntimeDep,
    body: CaptureBody | None = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    payload = {
        "payment_id": payment_id,
        "amount_to_capture": body.amount_to_capture if body else None,
    }
    return await _act(runtime, "capture_payment", payload, idempotency_key)


@router.post("/{payment_id}/release", summary="Capture and transfer to the runner")
async def release_payment(
    payment_id: str,
    body: ReleaseBody,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    payload = {"payment_id": payment_id, **body.model_dump()}
    return await _act(runtime, "release_payment", payload, idempotency_key)


@router.post("/{payment_id}/revert", summary="Cancel the hold or refund the capture")
async def revert_payment(
    payment_id: str,
    runtime: RuntimeDep,
    body: RevertBody | None = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    payload = {"payment_id": payment_id, "reason": body.reason if body else None}
    return await _act(runtime, "revert_payment", payload, idempotency_key)
