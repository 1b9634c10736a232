"""CampusG's HTTP routes, exactly as CONTRACT.md pins them down (no prefix)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response
from starlette.routing import Route

from payport.http import FastJSONResponse, RuntimeDep
from payport.ledger import repository as ledger
from payport.messaging.envelope import envelope_from_document, now_iso
from payport.money import Money
from payport.payments.views import BY_ID, BY_ORDER_ID, legacy_payment
from payport.runtime import Runtime

router = APIRouter(tags=["CampusG contract"])


def _failure(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"success": False, "error": code, "message": message}
    if field:
        body["field"] = field
    return FastJSONResponse(body, status_code=status)


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "healthy"}


# The two hottest reads (orchestrators poll them) are plain Starlette routes: FastAPI's
# parameter machinery costs ~2.5x the work itself here. They are documented in
# OpenAPI through LEGACY_READ_DOCS.


async def payment_status(request: Request) -> Response:
    order_id = request.path_params["order_id"]
    runtime: Runtime = request.app.state.runtime
    row = await runtime.db.fetch_one(BY_ORDER_ID, {"order_id": order_id})
    if row is None:
        return _failure(404, "NOT_FOUND", f"no payment for order {order_id}")
    return FastJSONResponse({"success": True, "payment": legacy_payment(row)})


async def payment_details(request: Request) -> Response:
    payment_id = request.path_params["payment_id"]
    runtime: Runtime = request.app.state.runtime
    row = await runtime.db.fetch_one(BY_ID, {"payment_id": payment_id})
    if row is None:
        return _failure(404, "NOT_FOUND", f"payment {payment_id} not found")
    return FastJSONResponse({"success": True, "payment": legacy_payment(row)})


async def history(request: Request) -> Response:
    """Read from the ledger: the user's customer and runner balances (a few rows each).

    Spent is what AUTHORIZED and SUCCEEDED payments hold or took from the
    customer; earned is what SUCCEEDED payments transferred to the runner.
    """
    user_id = request.path_params["user_id"]
    runtime: Runtime = request.app.state.runtime
    totals = await ledger.user_totals(runtime.db, user_id)
    return FastJSONResponse(
        {
            "userId": user_id,
            "totalSpent": _major_total(totals.spent),
            "totalEarned": _major_total(totals.earned),
            "spentCount": totals.spent_count,
            "earnedCount": totals.earned_count,
        }
    )


LEGACY_READ_ROUTES = [
    Route("/payment/{order_id}/status", payment_status, methods=["GET"]),
    Route("/payment/{payment_id}/details", payment_details, methods=["GET"]),
    Route("/history/{user_id}", history, methods=["GET"]),
]


def _read_doc(summary: str, parameter: str) -> dict[str, Any]:
    return {
        "get": {
            "tags": ["CampusG contract"],
            "summary": summary,
            "parameters": [
                {"name": parameter, "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": '`{"success": true, "payment": PAYMENT}` (CONTRACT.md)'},
                "404": {"description": '`{"success": false, "error": "NOT_FOUND", "message"}`'},
            },
        }
    }


LEGACY_READ_DOCS = {
    "/payment/{order_id}/status": _read_doc("The payment of an order", "order_id"),
    "/payment/{payment_id}/details": _read_doc("A payment by its id", "payment_id"),
    "/history/{user_id}": {
        "get": {
            "tags": ["CampusG contract"],
            "summary": "What a user spent and earned, from the ledger",
            "parameters": [
                {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": '`{"userId", "totalSpent", "totalEarned", "spentCount", '
                    '"earnedCount"}`, amounts in major units (CONTRACT.md)'
                }
            },
        }
    },
}


def _major_total(amounts: list[Money]) -> float:
    """Each currency's minor units converted exactly to major units, then added up."""
    return float(sum((money.to_major() for money in amounts), Decimal(0)))


async def _json_body(request: Request) -> tuple[dict[str, Any] | None, JSONResponse | None]:
    """An optional JSON object body; callers of revert send none at all."""
    raw = await request.body()
    if not raw.strip():
        return {}, None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, _failure(400, "INVALID_PAYLOAD", "body is not valid JSON", "body")
    if not isinstance(body, dict):
        return None, _failure(400, "INVALID_PAYLOAD", "body must be a JSON object", "body")
    return body, None


async def _queue(
    runtime: RuntimeDep, kind: str, payload: dict[str, Any], correlation_id: str
) -> None:
    document = {
        "type": kind,
        "correlation_id": correlation_id,
        "timestamp": now_iso(),
        "payload": payload,
    }
    envelope = envelope_from_document(document)
    await runtime.bus.submit(envelope, orjson.dumps(document))


async def _exists(runtime: RuntimeDep, payment_id: str) -> bool:
    return await runtime.db.fetch_one(BY_ID, {"payment_id": payment_id}) is not None


@router.post("/payment/{payment_id}/release", status_code=202)
async def release(payment_id: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
    body, error = await _json_body(request)
    if error is not None or body is None:
        return error or _failure(400, "INVALID_PAYLOAD", "body required")
    for field in ("runner_id", "runner_connect_account_id"):
        if not isinstance(body.get(field), str) or not body[field]:
            return _failure(400, "INVALID_PAYLOAD", f"`{field}` is required", field)
    if not body["runner_connect_account_id"].startswith("acct_"):
        return _failure(
            400,
            "INVALID_PAYLOAD",
            "`runner_connect_account_id` must be acct_…",
            "runner_connect_account_id",
        )
    if not await _exists(runtime, payment_id):
        return _failure(404, "NOT_FOUND", f"payment {payment_id} not found")
    correlation_id = str(body.get("correlation_id") or uuid.uuid4())
    payload = {
        "payment_id": payment_id,
        "runner_id": body["runner_id"],
        "runner_connect_account_id": body["runner_connect_account_id"],
    }
    await _queue(runtime, "release_payment", payload, correlation_id)
    return FastJSONResponse(
        {
            "success": True,
            "message": "release_payment command queued",
            "correlation_id": correlation_id,
            "payment_id": payment_id,
        },
        status_code=202,
    )


@router.post("/payment/{payment_id}/revert", status_code=202)
async def revert(payment_id: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
    body, error = await _json_body(request)
    if error is not None or body is None:
        return error or _failure(400, "INVALID_PAYLOAD", "body must be a JSON object")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        return _failure(400, "INVALID_PAYLOAD", "`reason` must be a string", "reason")
    if not await _exists(runtime, payment_id):
        return _failure(404, "NOT_FOUND", f"payment {payment_id} not found")
    correlation_id = str(body.get("correlation_id") or uuid.uuid4())
    payload: dict[str, Any] = {"payment_id": payment_id}
    if reason:
        payload["reason"] = reason
    await _queue(runtime, "revert_payment", payload, correlation_id)
    return FastJSONResponse(
        {
            "success": True,
            "message": "revert_payment command queued",
            "correlation_id": correlation_id,
            "payment_id": payment_id,
        },
        status_code=202,
    )
