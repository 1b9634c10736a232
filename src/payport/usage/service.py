"""Recording usage once per event id, aggregating it per period, and invoicing it.

A batch is one multi-row INSERT … ON CONFLICT (event_id) DO NOTHING: a
re-sent event is counted as a duplicate and changes nothing, in any order.
The records really inserted are folded into hourly rollups (rollups.py) in
the same transaction; summaries read those.
Usage is billed in arrears: the cycle invoice that starts a period carries
the metered lines of the period that just ended, and when a subscription
ends its final invoice carries those of its last period.

Usage is accepted only while it can still be billed: for a subscription that
has not ended, stamped in its current period or later. Late usage (the
subscription ended, or its period was invoiced already) is refused with the
event's field named, never stored unbilled; an event id already recorded is
still answered as a duplicate. Recording holds a share lock on the
subscriptions, so it waits for a renewal or an end being decided and then
sees the new period (PostgreSQL; SQLite serializes writers anyway).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing.clock import Clock, new_id, time_of
from payport.billing.models import InvoiceLine, Plan, Subscription
from payport.billing.schemas import InvalidRequest, as_utc
from payport.billing.states import SubscriptionStatus
from payport.db import dialect_insert
from payport.errors import InvalidStatus, NotFound, PayportError
from payport.usage import rollups
from payport.usage.models import Aggregation, MeteredPrice, UsageRecord
from payport.usage.schemas import MeteredPriceBody, UsageEventBody, unit_minor


@dataclass(frozen=True, slots=True)
class Ingested:
    accepted: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class Totals:
    """A metric's records in one period, by every aggregation."""

    sum: int
    max: int
    count: int
    last: int

    def by(self, aggregation: Aggregation) -> int:
        return int(getattr(self, aggregation.value))


# `aggregate` without an end: every record from the start on.
END_OF_TIME = datetime(9999, 12, 31, tzinfo=UTC)

# Nothing is billed for these any more: their final invoice (if any) is made.
ENDED = frozenset({SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED})


async def _subscriptions(
    session: AsyncSession, events: Sequence[UsageEventBody]
) -> dict[str, Subscription]:
    """The events' subscriptions, share-locked in id order (a renewal or an end takes
    FOR UPDATE, so it and this recording go one after the other)."""
    ids = sorted({event.subscription_id for event in events})
    rows = await session.scalars(
        select(Subscription)
        .where(Subscription.id.in_(ids))
        .order_by(Subscription.id)
        .with_for_update(read=True, key_share=True)
    )
    found = {row.id: row for row in rows}
    for index, event in enumerate(events):
        if event.subscription_id not in found:
            raise NotFound(
                f"subscription {event.subscription_id} not found",
                field=f"events.{index}.subscription_id",
            )
    return found


def unbillable(subscription: Subscription, moment: datetime, index: int) -> PayportError | None:
    """Why usage at `moment` could never be billed (None: it will be)."""
    if subscription.subscription_status in ENDED:
        return InvalidStatus(
            f"subscription {subscription.id} is {subscription.status}: its usage was billed"
            " when it ended",
            field=f"events.{index}.subscription_id",
        )
    if moment < subscription.current_period_start:
        return InvalidRequest(
            f"{moment.isoformat()} is before the current period"
            f" ({subscription.current_period_start.isoformat()}), which is invoiced already",
            field=f"events.{index}.timestamp",
        )
    return None


async def _refuse_late(session: AsyncSession, late: Sequence[tuple[str, PayportError]]) -> None:
    """Raise the first refusal among late events not recorded already (a re-sent event
    that was accepted in time is a duplicate, answered as such)."""
    if not late:
        return
    known = set(
        await session.scalars(
            select(UsageRecord.event_id).where(UsageRecord.event_id.in_([e for e, _ in late]))
        )
    )
    for event_id, error in late:
        if event_id not in known:
            raise error


async def record_usage(
    session: AsyncSession, events: Sequence[UsageEventBody], *, clock: Clock
) -> Ingested:
    subscriptions = await _subscriptions(session, events)
    now: dict[str, datetime] = {}
    rows: list[dict[str, Any]] = []
    late: list[tuple[str, PayportError]] = []
    for index, event in enumerate(events):
        subscription = subscriptions[event.subscription_id]
        if event.timestamp is None and subscription.id not in now:
            now[subscription.id] = await time_of(session, subscription, clock)
        moment = as_utc(event.timestamp) if event.timestamp else now[subscription.id]
        refusal = unbillable(subscription, moment, index)
        if refusal is not None:
            late.append((event.event_id, refusal))
        rows.append(
            {
                "event_id": event.event_id,
                "subscription_id": event.subscription_id,
                "metric": event.metric,
                "quantity": event.quantity,
                "recorded_at": moment,
                "created_at": moment,
            }
        )
    await _refuse_late(session, late)
    # One lock order for every writer: two batches sharing event ids wait on each other's
    # inserts in event-id order, never in a cycle (a stable sort keeps the first of a repeat).
    rows.sort(key=itemgetter("event_id"))
    inserted = await _insert_new(session, rows)
    await rollups.add_records(session, inserted)
    return Ingested(accepted=len(inserted), duplicates=len(rows) - len(inserted))


@functools.cache
def _insert_new_records(dialect: str) -> Any:
    table = cast(Table, UsageRecord.__table__)
    return (
        dialect_insert(dialect)(table)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(table.c.id)
    )


async def _insert_new(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the records whose event id is new; the ids of those inserted."""
    # executemany: one statement, built once per dialect, batched by SQLAlchemy's
    # insertmanyvalues.
    statement = _insert_new_records(session.get_bind().dialect.name)
    return list((await session.scalars(statement, rows)).all())


async def aggregate(
    session: AsyncSession, subscription_id: str, *, start: datetime, end: datetime | None
) -> dict[str, Totals]:
    """Per metric over [start, end) (no end: everything from `start` on): sum, max, count,
    and the last record's quantity."""
    parts = await rollups.summarize(session, subscription_id, start=start, end=end or END_OF_TIME)
    return {
        metric: Totals(sum=part.sum, max=part.max, count=part.count, last=part.last)
        for metric, part in parts.items()
    }


async def add_metered_price(
    session: AsyncSession, plan: Plan, body: MeteredPriceBody
) -> MeteredPrice:
    existing = await session.scalar(
        select(MeteredPrice).where(
            MeteredPrice.plan_id == plan.id, MeteredPrice.metric == body.metric
        )
    )
    if existing is not None:
        raise InvalidRequest(f"plan {plan.id} already prices {body.metric}", field="metric")
    price = MeteredPrice(
        id=new_id("mp_"),
        plan_id=plan.id,
        metric=body.metric,
        aggregation=body.aggregation.value,
        unit_amount_minor=unit_minor(body, plan.currency),
        currency=plan.currency,
    )
    session.add(price)
    return price


async def metered_prices(session: AsyncSession, plan_id: str) -> list[MeteredPrice]:
    rows = await session.scalars(
        select(MeteredPrice).where(MeteredPrice.plan_id == plan_id).order_by(MeteredPrice.metric)
    )
    return list(rows)


async def metered_lines(
    session: AsyncSession,
    subscription: Subscription,
    period: tuple[datetime, datetime],
    *,
    final: bool = False,
) -> list[InvoiceLine]:
    """The ended period's usage, one line per metered price of the subscription's plan.

    `final`: the subscription's last period, which takes every record from its start on
    (one stamped after the end, accepted while it was live, has no later invoice)."""
    prices = await metered_prices(session, subscription.plan_id)
    if not prices:
        return []
    end = None if final else period[1]
    totals = await aggregate(session, subscription.id, start=period[0], end=end)
    lines = []
    for price in prices:
        found = totals.get(price.metric)
        quantity = found.by(Aggregation(price.aggregation)) if found else 0
        lines.append(
            InvoiceLine(
                kind="usage",
                description=f"{quantity} x {price.metric} ({price.aggregation})",
                plan_id=subscription.plan_id,
                quantity=quantity,
                amount_minor=quantity * price.unit_amount_minor,
                currency=price.currency,
                period_start=period[0],
                period_end=period[1],
            )
        )
    return lines
