"""Statistics as SQL aggregates over payments, invoices, refunds and subscriptions.

Usage is never scanned here: the record count is read from the rollups'
count rows (usage/rollups.py).

Revenue is money collected, per currency: captured payments (less what was
refunded from them), bucketed by the payment's creation day, plus paid
invoices by their payment time (renewal charges are invoice payments, never
payment rows, so nothing counts twice). MRR counts subscriptions that pay
now (active and past_due, not trialing, as Stripe does), normalized to a
month exactly: quarterly / 3, yearly / 12, rounded half-even once per currency.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing.models import Invoice, Plan, Subscription
from payport.billing.states import InvoiceStatus, SubscriptionStatus
from payport.db import UTCDateTime
from payport.payments.models import Payment
from payport.refunds.models import Refund
from payport.usage.rollups import record_count

Sub = SubscriptionStatus
PAYING = (Sub.ACTIVE.value, Sub.PAST_DUE.value)
LIVE = (Sub.ACTIVE.value, Sub.PAST_DUE.value, Sub.TRIALING.value)
_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}


class Granularity(StrEnum):
    DAY = "day"
    MONTH = "month"


def bucket(column: Any, granularity: Granularity, dialect: str) -> ColumnElement[str]:
    """The UTC day (`2026-12-01`) or month (`2026-12`) of a timestamp, as text."""
    if dialect == "postgresql":
        pattern = "YYYY-MM-DD" if granularity is Granularity.DAY else "YYYY-MM"
        return func.to_char(func.timezone("UTC", column), pattern)
    # SQLite stores UTC timestamps as ISO text: the prefix is the bucket.
    return func.substr(column, 1, 10 if granularity is Granularity.DAY else 7)


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime


@functools.cache
def _revenue_statement(granularity: Granularity, dialect: str, by_currency: bool) -> Any:
    """Built once per shape: building and cache-keying a statement per request cost more
    CPU than running it."""
    start, end = bindparam("start", type_=UTCDateTime()), bindparam("end", type_=UTCDateTime())
    paid_payments = select(
        bucket(Payment.created_at, granularity, dialect).label("period"),
        Payment.currency.label("currency"),
        Payment.amount_captured_minor.label("gross"),
        Payment.amount_refunded_minor.label("refunded"),
        literal(1).label("payments"),
        literal(0).label("invoices"),
    ).where(
        Payment.amount_captured_minor > 0,
        Payment.created_at >= start,
        Payment.created_at < end,
    )
    paid_invoices = select(
        bucket(Invoice.paid_at, granularity, dialect).label("period"),
        Invoice.currency.label("currency"),
        Invoice.amount_paid_minor.label("gross"),
        literal(0).label("refunded"),
        literal(0).label("payments"),
        literal(1).label("invoices"),
    ).where(
        Invoice.status == InvoiceStatus.PAID.value,
        Invoice.amount_paid_minor > 0,
        Invoice.paid_at >= start,
        Invoice.paid_at < end,
    )
    if by_currency:
        paid_payments = paid_payments.where(Payment.currency == bindparam("currency"))
        paid_invoices = paid_invoices.where(Invoice.currency == bindparam("currency"))
    both = union_all(paid_payments, paid_invoices).subquery()
    return (
        select(
            both.c.period,
            both.c.currency,
            func.sum(both.c.gross),
            func.sum(both.c.refunded),
            func.sum(both.c.payments),
            func.sum(both.c.invoices),
        )
        .group_by(both.c.period, both.c.currency)
        .order_by(both.c.period, both.c.currency)
    )


async def revenue(
    session: AsyncSession, *, granularity: Granularity, window: Window, currency: str | None
) -> list[dict[str, Any]]:
    dialect = session.get_bind().dialect.name
    statement = _revenue_statement(granularity, dialect, currency is not None)
    params = {"start": window.start, "end": window.end, "currency": currency}
    rows = await session.execute(statement, params)
    return [
        {
            "period": period,
            "currency": code,
            "gross_minor": int(gross),
            "refunded_minor": int(refunded),
            "net_minor": int(gross) - int(refunded),
            "payments": int(payments),
            "invoices": int(invoices),
        }
        for period, code, gross, refunded, payments, invoices in rows.all()
    ]


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


_RECURRING = (
    select(Plan.currency, Plan.billing_cycle, func.sum(Plan.amount_minor * Subscription.quantity))
    .select_from(Subscription)
    .join(Plan, Plan.id == Subscription.plan_id)
    .where(Subscription.status.in_(PAYING))
    .group_by(Plan.currency, Plan.billing_cycle)
)


async def recurring_revenue(session: AsyncSession) -> dict[str, dict[str, int]]:
    """MRR and ARR per currency from the paying subscriptions' plans and quantities."""
    rows = await session.execute(_RECURRING)
    per_cycle: dict[str, Decimal] = defaultdict(Decimal)
    yearly: dict[str, int] = defaultdict(int)
    for code, cycle, amount in rows.all():
        months = _MONTHS[cycle]
        per_cycle[code] += Decimal(int(amount)) / months
        yearly[code] += int(amount) * (12 // months)
    return {code: {"mrr_minor": _round(per_cycle[code]), "arr_minor": yearly[code]}
            for code in sorted(per_cycle)}  # fmt: skip


_BY_STATUS = select(Subscription.status, func.count()).group_by(Subscription.status)


def _count_in_window(column: Any) -> Any:
    start, end = bindparam("start", type_=UTCDateTime()), bindparam("end", type_=UTCDateTime())
    return select(func.count()).where(column >= start, column < end)


_NEW = _count_in_window(Subscription.started_at)
_CHURNED = _count_in_window(Subscription.ended_at)


async def _by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(_BY_STATUS)
    return {status: int(count) for status, count in sorted(rows.all())}


async def subscription_stats(session: AsyncSession, *, window: Window) -> dict[str, Any]:
    by_status = await _by_status(session)
    params = {"start": window.start, "end": window.end}
    new = await session.scalar(_NEW, params)
    churned = await session.scalar(_CHURNED, params)
    live = sum(int(by_status.get(status, 0)) for status in LIVE)
    return {
        "active": int(by_status.get(Sub.ACTIVE.value, 0)),
        "trialing": int(by_status.get(Sub.TRIALING.value, 0)),
        "past_due": int(by_status.get(Sub.PAST_DUE.value, 0)),
        "live": live,
        "by_status": by_status,
        "new": int(new or 0),
        "churned": int(churned or 0),
        "recurring_revenue": await recurring_revenue(session),
    }


def _by_status_and_currency(kind: str, status: Any, amount: Any, currency: Any) -> Any:
    return select(
        literal(kind).label("kind"), status.label("status"), currency.label("currency"),
        func.count().label("count"), func.coalesce(func.sum(amount), 0).label("amount"),
    ).group_by(status, currency)  # fmt: skip


_MONEY_COUNTS = (
    union_all(
        _by_status_and_currency("payments", Payment.status, Payment.amount_minor,
                                Payment.currency),
        _by_status_and_currency("invoices", Invoice.status, Invoice.total_minor,
                                Invoice.currency),
        _by_status_and_currency("refunds", Refund.status, Refund.amount_minor, Refund.currency),
    ).subquery()
)  # fmt: skip
_MONEY_COUNTS_ORDERED = select(_MONEY_COUNTS).order_by(
    _MONEY_COUNTS.c.kind, _MONEY_COUNTS.c.status, _MONEY_COUNTS.c.currency
)


async def _money_counts(session: AsyncSession) -> dict[str, list[dict[str, Any]]]:
    """Payments, invoices and refunds by status and currency, in one round trip."""
    rows = await session.execute(_MONEY_COUNTS_ORDERED)
    counts: dict[str, list[dict[str, Any]]] = {"payments": [], "invoices": [], "refunds": []}
    for kind, status, code, count, total in rows.all():
        counts[kind].append({"status": status, "currency": code, "count": int(count),
                             "amount_minor": int(total)})  # fmt: skip
    return counts


async def overall(session: AsyncSession) -> dict[str, Any]:
    return await _money_counts(session) | {
        "subscriptions": await _by_status(session),
        "usage_records": await record_count(session),
    }
