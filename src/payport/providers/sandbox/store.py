"""Queries on the sandbox tables, inside the caller's session (the caller owns the transaction)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from payport.providers.sandbox.models import (
    SandboxIdempotencyRecord,
    SandboxObject,
    SandboxState,
    SandboxWebhookDelivery,
)
from payport.providers.sandbox.objects import JSON, event_object


class KeyInUseError(Exception):
    """Another transaction holds (or just committed) this idempotency key or state name."""


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SandboxStore:
    """Reads and writes Stripe-shaped objects, idempotency records, events and state."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(
        self, object_id: str, object_type: str, *, for_update: bool = False
    ) -> JSON | None:
        """The object, or None if the id is unknown or names another kind of object."""
        row = await self._session.get(SandboxObject, object_id, with_for_update=for_update)
        if row is None or row.object_type != object_type:
            return None
        data: JSON = json.loads(row.data)
        return data

    async def intents_with_metadata(self, key: str, value: str) -> list[JSON]:
        """PaymentIntents whose metadata has `key` = `value`, oldest first."""
        needle = dumps({key: value})[1:-1]  # `"key":"value"`, as `dumps` writes it
        rows = await self._session.scalars(
            select(SandboxObject.data)
            .where(SandboxObject.object_type == "payment_intent")
            .where(SandboxObject.data.contains(needle, autoescape=True))
            .order_by(SandboxObject.created_at, SandboxObject.id)
        )
        intents = [json.loads(row) for row in rows]
        return [pi for pi in intents if (pi.get("metadata") or {}).get(key) == value]

    async def add(self, obj: JSON, *, now: datetime) -> None:
        self._session.add(
            SandboxObject(
                id=obj["id"], object_type=obj["object"], data=dumps(obj), created_at=now,
                updated_at=now,
            )
        )  # fmt: skip

    async def save(self, obj: JSON, *, now: datetime) -> None:
        """Write back an object read earlier in this session."""
        row = await self._session.get(SandboxObject, obj["id"])
        if row is None:
            raise LookupError(f"{obj['id']} was never stored")
        row.data = dumps(obj)
        row.updated_at = now

    async def idempotency_records(self, keys: list[str]) -> dict[str, SandboxIdempotencyRecord]:
        if not keys:
            return {}
        rows = await self._session.scalars(
            select(SandboxIdempotencyRecord).where(SandboxIdempotencyRecord.key.in_(keys))
        )
        return {record.key: record for record in rows}

    def record_idempotency_key(
        self, key: str, fingerprint: str, http_status: int, body: JSON, *, now: datetime
    ) -> None:
        """Save the answer under its key, in the transaction that made the effect."""
        self._session.add(
            SandboxIdempotencyRecord(
                key=key, fingerprint=fingerprint, http_status=http_status, body=dumps(body),
                created_at=now,
            )
        )  # fmt: skip

    async def enqueue_event(self, event: JSON, *, now: datetime) -> None:
        self._session.add(
            SandboxWebhookDelivery(
                event_id=event["id"], event_type=event["type"], body=dumps(event), attempts=0,
                next_attempt_at=now,
            )
        )  # fmt: skip

    async def state(self, name: str) -> str | None:
        return await self._session.scalar(
            select(SandboxState.value).where(SandboxState.name == name)
        )

    async def set_state(self, name: str, value: str) -> None:
        row = await self._session.get(SandboxState, name)
        if row is None:
            self._session.add(SandboxState(name=name, value=value))
            try:
                await self._session.flush()
            except IntegrityError as exc:
                raise KeyInUseError(name) from exc
        else:
            row.value = value

    async def delete_state(self, name: str) -> None:
        row = await self._session.get(SandboxState, name)
        if row is not None:
            await self._session.delete(row)

    async def states_named(self, prefix: str) -> list[tuple[str, str]]:
        """Every (name, value) whose name starts with `prefix`."""
        rows = await self._session.execute(
            select(SandboxState.name, SandboxState.value).where(
                SandboxState.name.startswith(prefix, autoescape=True)
            )
        )
        return [(name, value) for name, value in rows.all()]


class RequestContext:
    """One request's handle on the sandbox: its store, its clock, and who asked (for events)."""

    def __init__(
        self,
        store: SandboxStore,
        *,
        now: datetime,
        request_id: str,
        idempotency_key: str | None,
        base_url: str,
    ) -> None:
        self.store = store
        self.now = now
        self.request_id = request_id
        self.idempotency_key = idempotency_key
        self.base_url = base_url

    async def emit(self, event_type: str, obj: JSON) -> None:
        """Record a webhook event in this transaction, so it exists iff the change does."""
        event = event_object(
            event_type, obj, now=self.now, request_id=self.request_id, key=self.idempotency_key
        )
        await self.store.enqueue_event(event, now=self.now)
