"""Delivers the sandbox's recorded events to payport's webhook endpoint, signed like Stripe.

Deliveries are claimed (leased) in one short transaction and POSTed outside it, so a slow
receiver never holds the database; several processes can run deliverers side by side.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from payport.db import Database, padded, utcnow
from payport.providers.sandbox.models import SandboxWebhookDelivery
from payport.providers.sandbox.provider import SandboxProvider
from payport.webhooks.signature import signature_header

# A claimed delivery is not picked again for this long, even if its process dies mid-POST.
_LEASE = timedelta(seconds=60)
_MAX_BACKOFF_S = 300
# Given-up deliveries park here: never due again, easy to tell apart from pending ones.
GIVEN_UP_AT = datetime(9999, 1, 1, tzinfo=UTC)
_ERROR_TEXT_LIMIT = 500


# Delivery to this same process without HTTP: (body, Stripe-Signature) -> (status, text).
Loopback = Callable[[bytes, str], Awaitable[tuple[int, str]]]


@dataclass(frozen=True, slots=True)
class _Due:
    id: int
    body: str


def due_deliveries(now: datetime, limit: int) -> Select[SandboxWebhookDelivery]:
    """Undelivered events whose attempt is due, oldest first, locked for a claim.

    Read through the partial index on undelivered rows: delivered ones pile up and
    would otherwise be walked past in id order on every pass."""
    return (
        select(SandboxWebhookDelivery)
        .where(
            SandboxWebhookDelivery.delivered_at.is_(None),
            SandboxWebhookDelivery.next_attempt_at <= now,
        )
        .order_by(SandboxWebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


_MARK_DELIVERED = (
    update(SandboxWebhookDelivery)
    .where(SandboxWebhookDelivery.id.in_(bindparam("ids", expanding=True)))
    .values(
        attempts=SandboxWebhookDelivery.attempts + 1,
        delivered_at=bindparam("now"),
        last_error=None,
    )
    .execution_options(synchronize_session=False)  # the claim's objects are gone by now
)


class SandboxWebhookDeliverer:
    """POSTs due events in id order; 2xx marks them delivered, anything else backs off."""

    def __init__(
        self,
        db: Database,
        *,
        provider: SandboxProvider,
        url: str,
        client: httpx.AsyncClient,
        max_attempts: int = 8,
        loopback: Loopback | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._db = db
        self._provider = provider
        self._url = url
        self._client = client
        self._loopback = loopback
        self._max_attempts = max_attempts
        self._rng = random.Random()

    async def deliver_due(self, limit: int = 100, concurrency: int = 16) -> int:
        """Attempt every due delivery (up to `limit`); return how many were attempted.

        POSTs overlap (Stripe promises no order either) and their outcomes are
        recorded together in one transaction.
        """
        secret = await self._provider.webhook_secret()
        due = await self._claim_due(limit)
        if not due:
            return 0
        slots = asyncio.Semaphore(concurrency)

        async def attempt(delivery: _Due) -> str | None:
            async with slots:
                return await self._post(delivery.body.encode(), secret)

        errors = await asyncio.gather(*(attempt(delivery) for delivery in due))
        await self._record_attempts([(d.id, e) for d, e in zip(due, errors, strict=True)])
        return len(due)

    async def pending_count(self) -> int:
        """Events not delivered yet and not given up on."""
        async with self._db.read() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(SandboxWebhookDelivery)
                .where(
                    SandboxWebhookDelivery.delivered_at.is_(None),
                    SandboxWebhookDelivery.next_attempt_at < GIVEN_UP_AT,
                )
            )
        return int(count or 0)

    async def _claim_due(self, limit: int) -> list[_Due]:
        now = utcnow()
        async with self._db.transaction() as session:
            rows = (await session.scalars(due_deliveries(now, limit))).all()
            for row in rows:
                row.next_attempt_at = now + _LEASE
            return [_Due(row.id, row.body) for row in rows]

    async def _post(self, payload: bytes, secret: str) -> str | None:
        """None on a 2xx answer, else what went wrong (network errors included)."""
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": signature_header(secret, payload),
            "User-Agent": "payport-sandbox/1.0 (+webhooks)",
        }
        if self._loopback is not None:
            status, text = await self._loopback(payload, headers["Stripe-Signature"])
            return None if 200 <= status < 300 else f"HTTP {status}: {text}"[:_ERROR_TEXT_LIMIT]
        try:
            response = await self._client.post(self._url, content=payload, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:_ERROR_TEXT_LIMIT]
        if response.is_success:
            return None
        return f"HTTP {response.status_code}: {response.text}"[:_ERROR_TEXT_LIMIT]

    async def _record_attempts(self, outcomes: list[tuple[int, str | None]]) -> None:
        now = utcnow()
        delivered = [delivery_id for delivery_id, error in outcomes if error is None]
        failed = [(delivery_id, error) for delivery_id, error in outcomes if error is not None]
        async with self._db.transaction() as session:
            if delivered:
                await session.execute(_MARK_DELIVERED, {"ids": padded(delivered), "now": now})
            for delivery_id, error in failed:
                await self._record_failure(session, delivery_id, error, now)

    async def _record_failure(
        self, session: AsyncSession, delivery_id: int, error: str | None, now: datetime
    ) -> None:
        row = await session.get(SandboxWebhookDelivery, delivery_id, with_for_update=True)
        if row is not None:
            row.attempts += 1
            row.last_error = error
            if row.attempts >= self._max_attempts:
                row.next_attempt_at = GIVEN_UP_AT
                row.last_error = f"given up after {row.attempts} attempts; last error: {error}"
            else:
                row.next_attempt_at = now + self._backoff(row.attempts)

    def _backoff(self, attempts: int) -> timedelta:
        """Exponential, capped at five minutes, with jitter so receivers are not stampeded."""
        base = min(2**attempts, _MAX_BACKOFF_S)
        return timedelta(seconds=base * self._rng.uniform(0.75, 1.0))
