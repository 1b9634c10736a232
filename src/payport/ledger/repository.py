"""Queries on the ledger; no decisions here. Balance reads add up an account's few bucket rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.db import Database
from payport.ledger import accounts
from payport.ledger.models import LedgerBalance, LedgerEntry, LedgerPosting
from payport.money import Money


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's balance in one currency, and how many payments it is made of."""

    account: str
    money: Money
    payment_count: int


async def balances(session: AsyncSession, account_codes: Sequence[str]) -> list[Balance]:
    """Balances of the given accounts, per currency: one primary-key range per account."""
    rows = await session.execute(
        select(
            LedgerBalance.account,
            LedgerBalance.currency,
            func.sum(LedgerBalance.balance_minor),
            func.sum(LedgerBalance.payment_count),
        )
        .where(LedgerBalance.account.in_(account_codes))
        .group_by(LedgerBalance.account, LedgerBalance.currency)
        .order_by(LedgerBalance.account, LedgerBalance.currency)
    )
    return [
        Balance(account, Money(int(amount), currency), int(count))
        for account, currency, amount, count in rows
    ]


ONE_ACCOUNT = cast(
    "Select[Any]",
    select(
        LedgerBalance.currency,
        func.sum(LedgerBalance.balance_minor).label("amount"),
        func.sum(LedgerBalance.payment_count).label("payments"),
    )
    .where(LedgerBalance.account == bindparam("account"))
    .group_by(LedgerBalance.currency)
    .order_by(LedgerBalance.currency),
)


async def balance_of(db: Database, account_code: str) -> list[Balance]:
    """One account's balances per currency: its bucket rows, straight through the driver."""
    rows = await db.fetch_all(ONE_ACCOUNT, {"account": account_code})
    return [
        Balance(account_code, Money(int(row["amount"]), row["currency"]), int(row["payments"]))
        for row in rows
    ]


@dataclass(slots=True)
class UserTotals:
    """What a user paid for as a customer and was paid as a runner, per currency."""

    spent: list[Money] = field(default_factory=list)
    earned: list[Money] = field(default_factory=list)
    spent_count: int = 0
    earned_count: int = 0


# A user's customer and runner balance rows, summed per account and currency.
USER_BALANCES = cast(
    "Select[Any]",
    select(
        LedgerBalance.account,
        LedgerBalance.currency,
        func.sum(LedgerBalance.balance_minor).label("amount"),
        func.sum(LedgerBalance.payment_count).label("payments"),
    )
    .where(LedgerBalance.account.in_([bindparam("customer"), bindparam("runner")]))
    .group_by(LedgerBalance.account, LedgerBalance.currency),
)


async def user_totals(db: Database, user_id: str) -> UserTotals:
    """Read from the user's customer and runner accounts (customer funding runs negative).

    The hot path of `/history`: one grouped read of a handful of rows, straight
    through the driver.
    """
    customer, runner = accounts.customer(user_id).code, accounts.runner(user_id).code
    rows = await db.fetch_all(USER_BALANCES, {"customer": customer, "runner": runner})
    totals = UserTotals()
    for row in rows:
        amount, count, currency = int(row["amount"]), int(row["payments"]), row["currency"]
        if row["account"] == customer:
            totals.spent.append(Money(-amount, currency))
            totals.spent_count += count
        else:
            totals.earned.append(Money(amount, currency))
            totals.earned_count += count
    return totals


async def list_entries(
    session: AsyncSession,
    *,
    account: str | None,
    payment_id: str | None,
    limit: int,
    starting_after: int | None,
) -> Sequence[LedgerEntry]:
    """Newest first; the cursor is the id of the last entry of the previous page."""
    query = select(LedgerEntry)
    order = LedgerEntry.id
    if account is not None:
        query = query.join(LedgerPosting, LedgerPosting.entry_id == LedgerEntry.id).where(
            LedgerPosting.account == account
        )
        order = LedgerPosting.entry_id  # walks the (account, entry_id) index
    if payment_id is not None:
        query = query.where(LedgerEntry.payment_id == payment_id)
    if starting_after is not None:
        query = query.where(order < starting_after)
    return (await session.scalars(query.order_by(order.desc()).limit(limit))).all()


async def postings_of(
    session: AsyncSession, entry_ids: Sequence[int]
) -> dict[int, list[LedgerPosting]]:
    rows = await session.scalars(
        select(LedgerPosting)
        .where(LedgerPosting.entry_id.in_(entry_ids))
        .order_by(LedgerPosting.id)
    )
    grouped: dict[int, list[LedgerPosting]] = defaultdict(list)
    for posting in rows:
        grouped[posting.entry_id].append(posting)
    return grouped
