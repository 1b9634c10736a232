"""The local transport: commands and events in the database, for the embedded default."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
from sqlalchemy import Integer, Select, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from payport.db import Database, sql_literal, utcnow
from payport.errors import PayportError
from payport.messaging.dead_letters import tell_sender
from payport.messaging.dispatch import KeyedDispatcher
from payport.messaging.envelope import parse_envelope, target_of
from payport.messaging.models import LocalCommand, OutboxEvent
from payport.payments.handlers import PaymentsContext, handle_command

log = logging.getLogger(__name__)
# Core tables for executemany updates (the ORM would treat them as bulk-by-primary-key).
_COMMANDS: Table = LocalCommand.__table__  # type: ignore[assignment]
_OUTBOX: Table = OutboxEvent.__table__  # type: ignore[assignment]


def enqueue_command(session: AsyncSession, body: bytes, key: str | None) -> LocalCommand:
    command = LocalCommand(key=key, body=body.decode(), status="pending")
    session.add(command)
    return command


def pending_commands(limit: int) -> Select[int, str]:
    """The oldest commands not taken yet (served by the partial index on pending ones)."""
    return (
        select(LocalCommand.id, LocalCommand.body)
        .where(LocalCommand.status == sql_literal("pending"))
        .order_by(LocalCommand.id)
        .limit(limit)
    )


class LocalCommandConsumer:
    """Reads pending commands in id order and runs them through the keyed dispatcher."""

    def __init__(self, ctx: PaymentsContext, *, max_in_flight: int, batch: int = 500) -> None:
        self._ctx = ctx
        self._dispatcher = KeyedDispatcher(max_in_flight)
        self._batch = batch
        self._in_flight: set[int] = set()
        self._finished: list[tuple[int, str, str | None]] = []

    async def poll_once(self) -> int:
        """Dispatch what is pending; returns how many commands were started."""
        await self.flush()
        async with self._ctx.db.read() as session:
            limit = self._batch + len(self._in_flight)
            rows = (await session.execute(pending_commands(limit))).all()
        started = 0
        for command_id, body in rows:
            if command_id in self._in_flight:
                continue
            self._in_flight.add(command_id)
            await self._dispatch(command_id, body)
            started += 1
        return started

    async def _dispatch(self, command_id: int, body: str) -> None:
        try:
            envelope = parse_envelope(body)
        except PayportError as error:
            if await tell_sender(self._ctx.db, body, error, f"local:{command_id}"):
                self._ctx.on_commit()
            self._finish(command_id, "dead", error.message)
            return
        key = target_of(envelope) or f"command:{command_id}"

        async def job() -> None:
            try:
                await handle_command(self._ctx, envelope, source_ref=f"local:{command_id}")
            except Exception as exc:
                log.exception("command failed command_id=%s; will retry", command_id)
                self._in_flight.discard(command_id)
                raise exc from None
            self._finish(command_id, "done", None)

        await self._dispatcher.submit(key, job)

    def _finish(self, command_id: int, status: str, error: str | None) -> None:
        self._finished.append((command_id, status, error))

    async def flush(self) -> None:
        """Mark finished commands in one statement instead of one transaction each."""
        if not self._finished:
            return
        finished, self._finished = self._finished, []
        async with self._ctx.db.transaction() as session:
            await session.execute(
                update(_COMMANDS)
                .where(_COMMANDS.c.id == bindparam("cid"))
                .values(status=bindparam("st"), error=bindparam("err"), processed_at=utcnow()),
                [{"cid": cid, "st": st, "err": err} for cid, st, err in finished],
            )
        for command_id, _status, _error in finished:
            self._in_flight.discard(command_id)

    async def join(self) -> None:
        await self._dispatcher.join()
        await self.flush()

    async def settled(self) -> bool:
        """A poll that found nothing means the table is drained."""
        return True

    async def close(self, grace_s: float = 7.0) -> None:
        """Let in-flight commands finish (up to `grace_s`); the rest stay pending."""
        try:
            await asyncio.wait_for(self._dispatcher.join(), grace_s)
        except TimeoutError:
            log.warning("in-flight commands outlived %.0fs; they stay pending", grace_s)
            await self._dispatcher.cancel()
        await self.flush()


class Publisher(Protocol):
    async def publish(self, events: Sequence[tuple[str | None, str]]) -> None: ...


class LocalEventPublisher:
    """Where the relay sends events; the local transport keeps them in the database."""

    async def publish(self, events: Sequence[tuple[str | None, str]]) -> None:
        return None

    async def aclose(self) -> None:
        return None


# Straight through the driver (Database.fetch_all): the relay runs after every commit.
_UNPUBLISHED = (
    select(_OUTBOX.c.id, _OUTBOX.c.key, _OUTBOX.c.body)
    .where(_OUTBOX.c.publish_seq.is_(None))
    .order_by(_OUTBOX.c.id)
    .limit(bindparam("limit", type_=Integer))
    .offset(bindparam("offset", type_=Integer))  # SQLite renders LIMIT with an OFFSET
)


_LAST_SEQ = select(func.max(OutboxEvent.publish_seq))
_STAMP_PUBLISHED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("oid"))
    .values(publish_seq=bindparam("seq"), published_at=bindparam("now"))
)


async def relay_once(db: Database, publisher: Publisher, *, limit: int = 1000) -> int:
    """Publish unpublished outbox rows and stamp them with a publish sequence number."""
    found = await db.fetch_all(_UNPUBLISHED, {"limit": limit, "offset": 0})
    rows = [(row["id"], row["key"], row["body"]) for row in found]
    if not rows:
        return 0
    await publisher.publish([(key, body) for _id, key, body in rows])
    async with db.transaction() as session:
        last = (await session.execute(_LAST_SEQ)).scalar() or 0
        now = utcnow()
        await session.execute(
            _STAMP_PUBLISHED,
            [
                {"oid": row_id, "seq": last + i, "now": now}
                for i, (row_id, _k, _b) in enumerate(rows, 1)
            ],
        )
    return len(rows)


async def list_events(
    session: AsyncSession, *, after: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Published events after a cursor, in publish order; returns (events, next cursor)."""
    rows = (
        await session.execute(
            select(OutboxEvent.publish_seq, OutboxEvent.body)
            .where(OutboxEvent.publish_seq > after)
            .order_by(OutboxEvent.publish_seq)
            .limit(limit)
        )
    ).all()
    events = [orjson.loads(body) for _seq, body in rows]
    cursor = rows[-1][0] if rows else after
    return events, int(cursor or 0)
