"""The order-call outbox: calls to the shop's services, written with the outcome that causes
them and sent by the worker until they are answered.

One row per call and outcome (`call_key` is unique), so a duplicate webhook cannot add a
second. A call may reach the shop more than once (a crash after the request, before the
row is marked), so each carries its key as `Idempotency-Key`. The calls of one order go out
in the order written (release inventory, then cancel) and a later one waits while an earlier
one is pending. Failures back off exponentially with jitter, capped, until attempts run out.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import orjson
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.checkout.auth import internal_headers
from payport.checkout.errors import CheckoutNotConfigured
from payport.checkout.models import OrderCall
from payport.config import Settings
from payport.db import Database, sql_literal, utcnow
from payport.providers.base import (
    PaymentProvider,
    ProviderError,
    ProviderInvalidRequest,
    ProviderTransientError,
)

log = logging.getLogger(__name__)

# A claimed call is not picked again for this long, even if its process dies mid-request.
_LEASE = timedelta(seconds=60)
_ERROR_TEXT_LIMIT = 500
# Timeouts, conflicts, rate limits, and refused credentials (a secret being rotated is fixed
# by configuration, after which the call should still go out).
_RETRYABLE_4XX = frozenset({401, 403, 408, 409, 425, 429})

ORDER = "order"
INVENTORY = "inventory"
PROVIDER = "provider"


def add_call(
    session: AsyncSession,
    *,
    call_key: str,
    order_id: str,
    payment_id: str,
    target: str,
    method: str,
    path: str,
    body: dict[str, object],
) -> None:
    """Queue a call; it exists only if the caller's transaction commits."""
    session.add(
        OrderCall(
            call_key=call_key, order_id=order_id, payment_id=payment_id, target=target,
            method=method, path=path, body=orjson.dumps(body).decode(), status="pending",
            attempts=0, next_attempt_at=utcnow(),
        )
    )  # fmt: skip


def retry_delay(attempts: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds before attempt `attempts + 1`: base·2^(attempts-1), capped, then jittered
    down by up to half so callers that failed together do not retry together."""
    ceiling: float = min(cap_s, base_s * 2.0 ** max(0, attempts - 1))
    return ceiling * rng.uniform(0.5, 1.0)


@dataclass(frozen=True, slots=True)
class _Due:
    id: int
    call_key: str
    order_id: str
    target: str
    method: str
    path: str
    body: str


@dataclass(frozen=True, slots=True)
class _Result:
    status: str  # done | retry | rejected
    error: str | None = None


def pending_calls(limit: int) -> Select[OrderCall]:
    """The oldest pending calls, locked for a claim (served by the partial index)."""
    return (
        select(OrderCall)
        .where(OrderCall.status == sql_literal("pending"))
        .order_by(OrderCall.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


class OrderCallSender:
    """Sends due calls concurrently (one per order at a time) and records the answers."""

    def __init__(
        self,
        db: Database,
        *,
        settings: Settings,
        provider: PaymentProvider,
        client: httpx.AsyncClient,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._provider = provider
        self._client = client
        self._rng = rng or random.Random()

    async def deliver_due(self, limit: int = 100, concurrency: int = 16) -> int:
        """Attempt every due call (up to `limit`); return how many were attempted."""
        if not await self._anything_due():
            return 0
        due = await self._claim_due(limit)
        if not due:
            return 0
        slots = asyncio.Semaphore(concurrency)

        async def attempt(call: _Due) -> _Result:
            async with slots:
                return await self._send(call)

        results = await asyncio.gather(*(attempt(call) for call in due))
        await self._record(list(zip(due, results, strict=True)))
        return len(due)

    async def _anything_due(self) -> bool:
        """A read first: the idle worker asks every few hundred ms, and on SQLite a claim
        would take the single write lock each time."""
        async with self._db.read() as session:
            earliest = await session.scalar(
                select(func.min(OrderCall.next_attempt_at)).where(
                    OrderCall.status == sql_literal("pending")
                )
            )
        return earliest is not None and earliest <= utcnow()

    async def _claim_due(self, limit: int) -> list[_Due]:
        """The first pending call of each order, if it is due; leased so no one else sends it."""
        now = utcnow()
        async with self._db.transaction() as session:
            rows = (await session.scalars(pending_calls(limit * 4))).all()
            first_per_order: dict[str, OrderCall] = {}
            for row in rows:
                first_per_order.setdefault(row.order_id, row)
            due = [row for row in first_per_order.values() if row.next_attempt_at <= now][:limit]
            for row in due:
                row.next_attempt_at = now + _LEASE
            return [
                _Due(row.id, row.call_key, row.order_id, row.target, row.method, row.path, row.body)
                for row in due
            ]

    async def _send(self, call: _Due) -> _Result:
        if call.target == PROVIDER:
            return await self._provider_action(call)
        base = (
            self._settings.inventory_service_url
            if call.target == INVENTORY
            else self._settings.order_service_url
        )
        try:
            headers = internal_headers(self._settings) | {
                "Content-Type": "application/json",
                "Idempotency-Key": call.call_key,
            }
        except CheckoutNotConfigured as exc:
            return _Result("retry", exc.message)
        try:
            response = await self._client.request(
                call.method,
                base.rstrip("/") + call.path,
                content=call.body.encode(),
                headers=headers,
                timeout=self._settings.order_call_timeout_s,
            )
        except httpx.HTTPError as exc:
            return _Result("retry", f"{type(exc).__name__}: {exc}"[:_ERROR_TEXT_LIMIT])
        if response.is_success:
            return _Result("done")
        error = f"HTTP {response.status_code}: {response.text}"[:_ERROR_TEXT_LIMIT]
        if response.status_code < 500 and response.status_code not in _RETRYABLE_4XX:
            return _Result("rejected", error)
        return _Result("retry", error)

    async def _provider_action(self, call: _Due) -> _Result:
        """`expire_session`: close the session after a failed payment, so it takes no money
        later. `refund`: give back a payment that arrived after its order was cancelled."""
        body = orjson.loads(call.body)
        try:
            if body["action"] == "expire_session":
                await self._provider.expire_checkout_session(
                    body["session_id"], idempotency_key=call.call_key
                )
            else:
                await self._provider.create_refund(
                    payment_intent=body["payment_intent"], amount_minor=None,
                    reason="requested_by_customer", idempotency_key=call.call_key,
                    metadata={"order_id": call.order_id},
                )  # fmt: skip
        except ProviderTransientError as exc:
            return _Result("retry", exc.message[:_ERROR_TEXT_LIMIT])
        except ProviderInvalidRequest:
            return _Result("done")  # already closed (or refunded): nothing left to do
        except ProviderError as exc:
            return _Result("rejected", f"{exc.error_type}: {exc.code}")
        return _Result("done")

    async def _record(self, outcomes: Sequence[tuple[_Due, _Result]]) -> None:
        now = utcnow()
        async with self._db.transaction() as session:
            for call, result in outcomes:
                row = await session.get(OrderCall, call.id, with_for_update=True)
                if row is not None:
                    self._apply(row, result, now)

    def _apply(self, row: OrderCall, result: _Result, now: datetime) -> None:
        row.attempts += 1
        row.last_error = result.error
        if result.status == "done":
            row.status, row.done_at = "done", now
            return
        if result.status == "rejected":
            row.status, row.done_at = "rejected", now
            log.error("order call rejected call_key=%s error=%s", row.call_key, result.error)
            return
        if row.attempts >= self._settings.order_call_max_attempts:
            row.status, row.done_at = "given_up", now
            log.error("order call given up call_key=%s attempts=%d", row.call_key, row.attempts)
            return
        delay = retry_delay(
            row.attempts,
            base_s=self._settings.order_call_backoff_s,
            cap_s=self._settings.order_call_max_backoff_s,
            rng=self._rng,
        )
        row.next_attempt_at = now + timedelta(seconds=delay)
        log.warning(
            "order call failed call_key=%s attempts=%d retry_in_s=%.1f error=%s",
            row.call_key, row.attempts, delay, result.error,
        )  # fmt: skip
