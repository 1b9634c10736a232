"""Recording usage once per event id, aggregating it per period, and invoicing it.

A batch is one multi-row INSERT … ON CONFLICT (event_id) DO NOTHING: a
re-sent event is counted as a duplicate and changes nothing, in any order.
The records really inserted are folded into hourly rollups (rollups.py) in
the same transaction; summaries read those.
Usage is billed in arrears: the cycle invoice that starts a period carries
the metered lines of the period that just ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing.clock import Clock, new_id, time_of
from payport.billing.models import InvoiceLine, Plan, Subscription
from payport.billing.schemas import InvalidRequest, as_utc
from payport.errors import NotFound
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


async def _subscriptions(
    session: AsyncSession, events: Sequence[UsageEventBody]
) -> dict[str, Subscription]:
    ids = {event.subscription_id for event in events}
    rows = await session.scalars(select(Subscription).where(Subscription.id.in_(ids)))
    found = {row.id: row for row in rows}
    for index, event in enumerate(events):
        if event.subscription_id not in found:
            raise NotFound(
                f"subscription {event.subscription_id} not found",
                field=f"events.{index}.subscription_id",
            )
    return found


async def record_usage(
    session: AsyncSession, events: Sequence[UsageEventBody], *, clock: Clock
) -> Ingested:
    subscriptions = await _subscriptions(session, events)
    now: dict[str, datetime] = {}
    rows: list[dict[str, Any]] = []
    for event in events:
        subscription = subscriptions[event.subscription_id]
        if event.timestamp is None and subscription.id not in now:
            now[subscription.id] = await time_of(session, subscription, clock)
        moment = as_utc(event.timestamp) if event.timestamp else now[subscription.id]
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
    # One lock order for every writer: two batches sharing event ids wait on each other's
    # inserts in event-id order, never in a cycle (a stable sort keeps the first of a repeat).
    rows.sort(key=itemgetter("event_id"))
    inserted = await _insert_new(session, rows)
    await rollups.add_records(session, inserted)
    return Ingested(accepted=len(inserted), duplicates=len(rows) - len(inserted))


async def _insert_new(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the records whose event id is new; the ids of those inserted."""
    insert = rollups.dialect_insert(session.get_bind().dialect.name)
    table = cast(Table, UsageRecord.__table__)
    # executemany: one cached statement, batched by SQLAlchemy's insertmanyvalues.
    statement = (
        insert(table).on_conflict_do_nothing(index_elements=["event_id"]).returning(table.c.id)
    )
    return list((await session.scalars(statement, rows)).all())


async def aggregate(
    session: AsyncSession, subscription_id: str, *, start: datetime, end: datetime
) -> dict[str, Totals]:
    """Per metric over [start, end): sum, max, count, and the last record's quantity."""
    parts = await rollups.summarize(session, subscription_id, start=start, end=end)
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
    session: AsyncSession, subscription: Subscription, period: tuple[datetime, datetime]
) -> list[InvoiceLine]:
    """The ended period's usage, one line per metered price of the subscription's plan."""
    prices = await metered_prices(session, subscription.plan_id)
    if not prices:
        return []
    totals = await aggregate(session, subscription.id, start=period[0], end=period[1])
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
