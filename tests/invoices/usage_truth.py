"""What usage summaries must say, computed straight from the stored records (no rollups)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing.models import Plan, Subscription
from payport.db import Database
from payport.usage.models import UsageRecord


async def add_subscriptions(db: Database, ids: list[str], at: datetime) -> None:
    """Subscriptions written straight into the database: usage needs only their rows."""
    async with db.transaction() as session:
        if await session.get(Plan, "plan_usage_truth") is None:
            session.add(Plan(id="plan_usage_truth", name="U", amount_minor=1000, currency="usd",
                             billing_cycle="monthly"))  # fmt: skip
            await session.flush()
        session.add_all(
            Subscription(id=sub_id, user_id=f"user_{sub_id}", plan_id="plan_usage_truth",
                         quantity=1, status="active", billing_cycle_anchor=at,
                         current_period_start=at, current_period_end=at, started_at=at)
            for sub_id in ids
        )  # fmt: skip


async def stored_records(session: AsyncSession, subscription_id: str) -> list[UsageRecord]:
    rows = await session.scalars(
        select(UsageRecord).where(UsageRecord.subscription_id == subscription_id)
    )
    return list(rows)


def summary_of(
    records: list[UsageRecord], start: datetime, end: datetime
) -> dict[str, dict[str, int]]:
    """sum, max, count and last (the quantity at the greatest recorded_at, then id) per metric."""
    by_metric: dict[str, list[UsageRecord]] = defaultdict(list)
    for record in records:
        if start <= record.recorded_at < end:
            by_metric[record.metric].append(record)
    summary = {}
    for metric, rows in sorted(by_metric.items()):
        latest = max(rows, key=lambda r: (r.recorded_at, r.id))
        summary[metric] = {"sum": sum(r.quantity for r in rows),
                           "max": max(r.quantity for r in rows), "count": len(rows),
                           "last": latest.quantity}  # fmt: skip
    return summary


async def record_total(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(UsageRecord)) or 0)


def window_params(start: datetime, end: datetime) -> dict[str, Any]:
    return {"start": start.isoformat(), "end": end.isoformat()}
