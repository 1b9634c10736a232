"""`Idempotency-Key` for payport's own POST routes, with Stripe's semantics.

Same key and same parameters: the stored response, replayed. Same key with
other parameters: an error. A request still running under the key: 409.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from fastapi.responses import JSONResponse
from sqlalchemy import Integer, String, Text, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from payport.db import Base, Database, UTCDateTime, utcnow
from payport.http import FastJSONResponse, problem


class IdempotencyRecord(Base):
    __tablename__ = "api_idempotency_keys"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def fingerprint(route: str, params: Any) -> str:
    return hashlib.sha256(
        route.encode() + orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()


async def run_idempotently(
    db: Database,
    key: str | None,
    *,
    route: str,
    params: Any,
    produce: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> JSONResponse:
    """Run `produce` once per key; store and replay its (status, body)."""
    if key is None:
        status, body = await produce()
        return _respond(status, body)
    if len(key) > 255:
        return problem(
            400,
            "INVALID_PAYLOAD",
            "Idempotency-Key is longer than 255 characters",
            field="Idempotency-Key",
        )
    scoped, digest = f"{route}|{key}", fingerprint(route, params)
    try:
        async with db.transaction() as session:
            session.add(IdempotencyRecord(key=scoped, fingerprint=digest))
    except IntegrityError:
        return await _replay(db, scoped, digest)
    try:
        status, body = await produce()
    except Exception:
        async with db.transaction() as session:  # not saved: the caller may retry
            await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.key == scoped))
        raise
    async with db.transaction() as session:
        record = await session.get(IdempotencyRecord, scoped)
        if record is not None:
            record.status_code, record.body = status, orjson.dumps(body).decode()
    return _respond(status, body)


async def _replay(db: Database, scoped: str, digest: str) -> JSONResponse:
    async with db.read() as session:
        record = await session.get(IdempotencyRecord, scoped)
    if record is None or record.status_code is None or record.body is None:
        return problem(
            409,
            "IDEMPOTENCY_KEY_IN_USE",
            "a request with this Idempotency-Key is still being processed",
            field="Idempotency-Key",
        )
    if record.fingerprint != digest:
        return problem(
            400,
            "IDEMPOTENCY_KEY_REUSED",
            "keys for idempotent requests can only be used with the same parameters "
            "they were first used with",
            field="Idempotency-Key",
        )
    response = _respond(record.status_code, orjson.loads(record.body))
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _respond(status: int, body: dict[str, Any]) -> JSONResponse:
    media = "application/problem+json" if status >= 400 else "application/json"
    return FastJSONResponse(body, status_code=status, media_type=media)
