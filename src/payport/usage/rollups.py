"""Hourly rollups of usage records: written with the records, read instead of them.

A period's summary used to scan every record of the subscription, and the
overall statistics counted every record; at a million records both were the
slowest reads of the service. The ingest transaction now folds the records
it really inserted (a duplicate event id inserts nothing, so it adds nothing)
into one row per (subscription, UTC hour, metric) and into a record count,
so a summary reads a few rows per metric and the count a few rows in all.

Writers lock rollup rows in one global order (sorted keys, after every record
insert) and count rows last, so concurrent ingests can wait on each other but
never in a cycle; the count is spread over buckets so they rarely wait on it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from payport.db import dialect_insert
from payport.usage.models import UsageRecord, UsageRecordCount, UsageRollup

HOUR = timedelta(hours=1)
COUNT_BUCKETS = 16
ROLLUPS = cast(Table, UsageRollup.__table__)
COUNTS = cast(Table, UsageRecordCount.__table__)
RECORDS = cast(Table, UsageRecord.__table__)


@dataclass(slots=True)
class Part:
    """Some records of one metric folded together; parts absorb each other in any order."""

    sum: int
    max: int
    count: int
    first_at: datetime
    last_at: datetime
    last_id: int
    last: int  # the quantity of the record with the greatest (recorded_at, id)

    def absorb(self, other: Part) -> None:
        self.sum += other.sum
        self.max = max(self.max, other.max)
        self.count += other.count
        self.first_at = min(self.first_at, other.first_at)
        if (other.last_at, other.last_id) > (self.last_at, self.last_id):
            self.last_at, self.last_id, self.last = other.last_at, other.last_id, other.last


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def merge_into(parts: dict[str, Part], metric: str, part: Part) -> None:
    found = parts.get(metric)
    if found is None:
        parts[metric] = part
    else:
        found.absorb(part)


# Ingest.


async def add_records(session: AsyncSession, ids: Sequence[int]) -> None:
    """Fold the records this transaction inserted (by id) into their hours' rows and the count.

    The database folds them (one statement reading the fresh rows back by primary
    key): it is cheaper than folding in Python and sending the rows over.
    """
    if not ids:
        return
    dialect = session.get_bind().dialect.name
    first, last = min(ids), max(ids)
    await session.execute(_fold_inserted(dialect), {"ids": list(ids), "first": first, "last": last})
    bucket = first % COUNT_BUCKETS
    await session.execute(_count_upsert(dialect), [{"bucket": bucket, "records": len(ids)}])


_COLUMNS = ("subscription_id", "hour_start", "metric", "quantity_sum", "quantity_max",
            "record_count", "first_at", "last_at", "last_id", "last_quantity")  # fmt: skip


def _folded(dialect: str, which: ColumnElement[bool]) -> Select[Any]:
    """The `which` records as rollup rows (in _COLUMNS order), in key order: the order in
    which an upsert of them locks rows, the same for every writer."""
    u = RECORDS.c
    hour = _hour_in_sql(dialect, u.recorded_at)
    ranked = (
        select(
            u.subscription_id, hour.label("hour_start"), u.metric, u.quantity, u.recorded_at,
            u.id,
            func.row_number()
            .over(partition_by=(u.subscription_id, hour, u.metric),
                  order_by=(u.recorded_at.desc(), u.id.desc()))
            .label("rank"),
        )
        .where(which)
        .subquery()
    )  # fmt: skip
    k = ranked.c
    latest = k.rank == 1
    key = (k.subscription_id, k.hour_start, k.metric)
    return (
        select(
            *key, func.sum(k.quantity), func.max(k.quantity), func.count(),
            func.min(k.recorded_at), func.max(k.recorded_at),
            func.max(case((latest, k.id))), func.max(case((latest, k.quantity))),
        )
        .where(true())  # SQLite needs a WHERE in an INSERT … SELECT … ON CONFLICT
        .group_by(*key)
        .order_by(*key)
    )  # fmt: skip


def _just_inserted(dialect: str) -> ColumnElement[bool]:
    """The records whose ids are `ids` (all between `first` and `last`)."""
    u = RECORDS.c
    if dialect == "postgresql":
        # One array parameter keeps one prepared statement for any batch size; the id range
        # keeps its plan a primary-key range scan even before the table has statistics.
        ids = bindparam("ids", type_=postgresql.ARRAY(BigInteger))
        return and_(u.id.between(bindparam("first"), bindparam("last")), u.id == any_(ids))
    return u.id.in_(bindparam("ids", expanding=True))


@functools.cache
def _fold_inserted(dialect: str) -> Any:
    return _upsert_rollups(dialect, _folded(dialect, _just_inserted(dialect)))


def _larger(dialect: str, a: Any, b: Any) -> ColumnElement[Any]:
    return func.greatest(a, b) if dialect == "postgresql" else func.max(a, b)


def _smaller(dialect: str, a: Any, b: Any) -> ColumnElement[Any]:
    return func.least(a, b) if dialect == "postgresql" else func.min(a, b)


def _upsert_rollups(dialect: str, rows: Select[Any]) -> Any:
    """Add each folded row to its rollup row: every SET reads the row as it was before."""
    statement = dialect_insert(dialect)(ROLLUPS).from_select(list(_COLUMNS), rows)
    new, old = statement.excluded, ROLLUPS.c
    later = or_(
        new.last_at > old.last_at, and_(new.last_at == old.last_at, new.last_id > old.last_id)
    )
    return statement.on_conflict_do_update(
        index_elements=["subscription_id", "hour_start", "metric"],
        set_={
            "quantity_sum": old.quantity_sum + new.quantity_sum,
            "quantity_max": _larger(dialect, old.quantity_max, new.quantity_max),
            "record_count": old.record_count + new.record_count,
            "first_at": _smaller(dialect, old.first_at, new.first_at),
            "last_at": case((later, new.last_at), else_=old.last_at),
            "last_id": case((later, new.last_id), else_=old.last_id),
            "last_quantity": case((later, new.last_quantity), else_=old.last_quantity),
        },
    )


@functools.cache
def _count_upsert(dialect: str) -> Any:
    statement = dialect_insert(dialect)(COUNTS)
    return statement.on_conflict_do_update(
        index_elements=["bucket"], set_={"records": COUNTS.c.records + statement.excluded.records}
    )


# Reads.


_RECORD_COUNT = select(func.coalesce(func.sum(COUNTS.c.records), 0))


async def record_count(session: AsyncSession) -> int:
    """Every usage record, counted from the count rows."""
    return int(await session.scalar(_RECORD_COUNT) or 0)


async def summarize(
    session: AsyncSession, subscription_id: str, *, start: datetime, end: datetime
) -> dict[str, Part]:
    """Per metric, the subscription's records in [start, end), from its rollup rows.

    Rows whose records all lie inside the window are added up by the database;
    a row whose records the window cuts through (only the first and last hour
    can be cut) is replaced by its records inside the window.
    """
    params = {"subscription_id": subscription_id, "start": start, "end": end,
              "from_hour": hour_of(start)}  # fmt: skip
    parts: dict[str, Part] = {}
    for row in await session.execute(_SUMMARY, params):
        if row.cut_hour is None:
            merge_into(parts, row.metric, _part_of_row(row))
            continue
        inside = await _records_part(
            session, subscription_id, row.metric,
            start=max(start, row.cut_hour), end=min(end, row.cut_hour + HOUR),
        )  # fmt: skip
        if inside is not None:
            merge_into(parts, row.metric, inside)
    return parts


def _part_of_row(row: Any) -> Part:
    return Part(
        sum=int(row.sum), max=int(row.max), count=int(row.count), first_at=row.first_at,
        last_at=row.last_at, last_id=int(row.last_id), last=int(row.last_quantity),
    )  # fmt: skip


def _summary_statement() -> Select[Any]:
    """One row per metric for the rows wholly inside the window, one per cut row."""
    r = ROLLUPS.c
    start, end = bindparam("start", type_=r.first_at.type), bindparam("end", type_=r.last_at.type)
    whole = and_(r.first_at >= start, r.last_at < end)
    cut_hour = case((whole, None), else_=r.hour_start)
    group = (r.metric, cut_hour)
    ranked = (
        select(
            r.metric,
            cut_hour.label("cut_hour"),
            func.sum(r.quantity_sum).over(partition_by=group).label("sum"),
            func.max(r.quantity_max).over(partition_by=group).label("max"),
            func.sum(r.record_count).over(partition_by=group).label("count"),
            func.min(r.first_at).over(partition_by=group).label("first_at"),
            r.last_at,
            r.last_id,
            r.last_quantity,
            func.row_number()
            .over(partition_by=group, order_by=(r.last_at.desc(), r.last_id.desc()))
            .label("rank"),
        )
        .where(
            r.subscription_id == bindparam("subscription_id"),
            r.hour_start >= bindparam("from_hour", type_=r.hour_start.type),
            r.hour_start < end,
            r.last_at >= start,  # some record of the row is inside the window
            r.first_at < end,
        )
        .subquery()
    )
    return select(*(c for c in ranked.c if c.name != "rank")).where(ranked.c.rank == 1)


_SUMMARY = _summary_statement()


async def _records_part(
    session: AsyncSession, subscription_id: str, metric: str, *, start: datetime, end: datetime
) -> Part | None:
    """The records themselves, for the part of an hour a window cuts off."""
    u = RECORDS.c
    inside = (u.subscription_id == subscription_id, u.metric == metric,
              u.recorded_at >= start, u.recorded_at < end)  # fmt: skip
    folded = select(
        func.sum(u.quantity), func.max(u.quantity), func.count(), func.min(u.recorded_at)
    ).where(*inside)
    totals = (await session.execute(folded)).one()
    if not totals[2]:
        return None
    latest = (
        await session.execute(
            select(u.recorded_at, u.id, u.quantity)
            .where(*inside)
            .order_by(u.recorded_at.desc(), u.id.desc())
            .limit(1)
        )
    ).one()
    return Part(
        sum=int(totals[0]), max=int(totals[1]), count=int(totals[2]), first_at=totals[3],
        last_at=latest.recorded_at, last_id=int(latest.id), last=int(latest.quantity),
    )  # fmt: skip


# Rebuilding from the records.


def rebuild(connection: Connection) -> None:
    """Recompute every rollup row and the record count from the records.

    The migration runs it for records from before rollups existed; it is also
    how rollups are repaired after records were written around the service
    (a bulk COPY, as the usage bench does).
    """
    dialect = connection.dialect.name
    connection.execute(delete(ROLLUPS))
    connection.execute(delete(COUNTS))
    connection.execute(_upsert_rollups(dialect, _folded(dialect, true())))
    total = select(literal(0), func.count()).select_from(RECORDS)
    connection.execute(insert(COUNTS).from_select(["bucket", "records"], total))


def _hour_in_sql(dialect: str, column: Any) -> ColumnElement[Any]:
    """The UTC hour of a stored timestamp, stored the way `hour_of` values are."""
    if dialect == "postgresql":
        return func.timezone("UTC", func.date_trunc("hour", func.timezone("UTC", column)))
    # SQLite keeps UTC timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' text.
    return func.substr(column, 1, 13).concat(":00:00.000000")
