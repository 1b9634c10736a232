"""Queries on the sandbox tables, inside the caller's session (the caller owns the transaction).

New rows (objects, idempotency records, webhook deliveries) are not ORM objects: they wait
in the session's transaction and go in at its commit as one executemany per table, which
costs a fraction of the unit of work's flush. Reads in the same transaction see them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from payport.db import padded
from payport.providers.sandbox.models import (
    SandboxIdempotencyRecord,
    SandboxObject,
    SandboxState,
    SandboxWebhookDelivery,
)
from payport.providers.sandbox.objects import JSON, event_object

_PENDING = "payport.sandbox.pending"
_OBJECTS = cast(Table, SandboxObject.__table__)
_RECORDS = cast(Table, SandboxIdempotencyRecord.__table__)
_DELIVERIES = cast(Table, SandboxWebhookDelivery.__table__)
# Built once, as the authorize path's hot statements are (payments/authorize.py).
_RECORDS_BY_KEY = select(SandboxIdempotencyRecord).where(
    SandboxIdempotencyRecord.key.in_(bindparam("keys", expanding=True))
)
_INSERT_RECORDS, _INSERT_OBJECTS, _INSERT_DELIVERIES = (
    insert(table) for table in (_RECORDS, _OBJECTS, _DELIVERIES)
)


class KeyInUseError(Exception):
    """Another transaction holds (or just committed) this idempotency key or state name."""


def dumps(value: Any) -> str:
    """Compact JSON text (orjson: several times faster than the json module)."""
    return orjson.dumps(value).decode()


@dataclass(slots=True)
class _Pending:
    """Rows this transaction adds, written when it commits."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)


def _pending(session: AsyncSession) -> _Pending:
    pending: _Pending = session.sync_session.info.setdefault(_PENDING, _Pending())
    return pending


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    pending: _Pending | None = session.info.pop(_PENDING, None)
    if pending is None:
        return
    # Idempotency records first: a concurrent duplicate fails here, before anything else.
    if pending.records:
        session.execute(_INSERT_RECORDS, pending.records)
    if pending.objects:
        session.execute(_INSERT_OBJECTS, list(pending.objects.values()))
    if pending.deliveries:
        session.execute(_INSERT_DELIVERIES, pending.deliveries)


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


class SandboxStore:
    """Reads and writes Stripe-shaped objects, idempotency records, events and state."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(
        self, object_id: str, object_type: str, *, for_update: bool = False
    ) -> JSON | None:
        """The object, or None if the id is unknown or names another kind of object."""
        added = _pending(self._session).objects.get(object_id)
        if added is not None:
            data, kind = added["data"], added["object_type"]
        else:
            query = select(_OBJECTS.c.object_type, _OBJECTS.c.data).where(
                _OBJECTS.c.id == object_id
            )
            if for_update:
                query = query.with_for_update()
            row = (await self._session.execute(query)).first()
            if row is None:
                return None
            kind, data = row
        if kind != object_type:
            return None
        obj: JSON = orjson.loads(data)
        return obj

    async def intents_with_metadata(self, key: str, value: str) -> list[JSON]:
        """PaymentIntents whose metadata has `key` = `value`, oldest first."""
        needle = dumps({key: value})[1:-1]  # `"key":"value"`, as `dumps` writes it
        rows = await self._session.scalars(
            select(SandboxObject.data)
            .where(SandboxObject.object_type == "payment_intent")
            .where(SandboxObject.data.contains(needle, autoescape=True))
            .order_by(SandboxObject.created_at, SandboxObject.id)
        )
        intents = [orjson.loads(row) for row in rows]
        return [pi for pi in intents if (pi.get("metadata") or {}).get(key) == value]

    async def add(self, obj: JSON, *, now: datetime) -> None:
        _pending(self._session).objects[obj["id"]] = {
            "id": obj["id"], "object_type": obj["object"], "data": dumps(obj), "created_at": now,
            "updated_at": now,
        }  # fmt: skip

    async def save(self, obj: JSON, *, now: datetime) -> None:
        """Write back an object read earlier in this session."""
        added = _pending(self._session).objects.get(obj["id"])
        if added is not None:
            added.update(data=dumps(obj), updated_at=now)
            return
        result = await self._session.execute(
            update(_OBJECTS)
            .where(_OBJECTS.c.id == obj["id"])
            .values(data=dumps(obj), updated_at=now)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise LookupError(f"{obj['id']} was never stored")

    async def idempotency_records(self, keys: list[str]) -> dict[str, SandboxIdempotencyRecord]:
        if not keys:
            return {}
        rows = await self._session.scalars(_RECORDS_BY_KEY, {"keys": padded(keys)})
        return {record.key: record for record in rows}

    def record_idempotency_key(
        self, key: str, fingerprint: str, http_status: int, body: JSON, *, now: datetime
    ) -> None:
        """Save the answer under its key, in the transaction that made the effect."""
        _pending(self._session).records.append(
            {
                "key": key, "fingerprint": fingerprint, "http_status": http_status,
                "body": dumps(body), "created_at": now,
            }
        )  # fmt: skip

    async def enqueue_event(self, event: JSON, *, now: datetime) -> None:
        _pending(self._session).deliveries.append(
            {
                "event_id": event["id"], "event_type": event["type"], "body": dumps(event),
                "attempts": 0, "next_attempt_at": now,
            }
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
