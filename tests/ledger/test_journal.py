"""Drafts are written when their transaction commits: once per cause, balanced, in bulk."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from payport.ledger import accounts, repository
from payport.ledger import service as ledger
from payport.ledger.models import LedgerBalance, LedgerEntry, LedgerPosting
from payport.money import Money
from tests.harness import Harness


def usd(amount: int) -> Money:
    return Money(amount, "usd")


async def count(harness: Harness, model: type[object]) -> int:
    async with harness.runtime.db.read() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_posted_drafts_are_written_with_their_transaction(harness: Harness) -> None:
    async with harness.runtime.db.transaction() as session:
        ledger.post(session, ledger.authorize(payment_id="p1", customer="alice", amount=usd(900)))
        ledger.post(
            session,
            ledger.capture(
                payment_id="p1", customer="alice", authorized=usd(900), captured=usd(900)
            ),
        )
        assert await count(harness, LedgerEntry) == 0  # not before the commit
    async with harness.runtime.db.read() as session:
        causes = (await session.scalars(select(LedgerEntry.cause).order_by(LedgerEntry.id))).all()
        got = await repository.balances(session, ["customer:alice", "hold:p1", "escrow:p1"])
    assert causes == ["authorize:p1", "capture:p1"]
    assert await count(harness, LedgerPosting) == 4
    assert [(b.account, b.money.amount_minor, b.payment_count) for b in got] == [
        ("customer:alice", -900, 1),
        ("escrow:p1", 900, 0),
        ("hold:p1", 0, 0),
    ]


async def test_the_same_cause_posts_once(harness: Harness) -> None:
    hold = ledger.authorize(payment_id="p2", customer="alice", amount=usd(700))
    async with harness.runtime.db.transaction() as session:
        ledger.post(session, hold, hold)
    async with harness.runtime.db.transaction() as session:
        ledger.post(session, ledger.authorize(payment_id="p2", customer="bob", amount=usd(1)))
    assert await count(harness, LedgerEntry) == 1
    assert await count(harness, LedgerPosting) == 2
    async with harness.runtime.db.read() as session:
        got = await repository.balances(session, ["customer:alice", "customer:bob"])
    assert [(b.account, b.money.amount_minor) for b in got] == [("customer:alice", -700)]


async def test_a_rolled_back_transaction_posts_nothing(harness: Harness) -> None:
    async def failing_state_change() -> None:
        async with harness.runtime.db.transaction() as session:
            ledger.post(session, ledger.authorize(payment_id="p3", customer="a", amount=usd(50)))
            raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        await failing_state_change()
    async with harness.runtime.db.transaction():
        pass  # a later transaction on a fresh session writes nothing left over
    assert await count(harness, LedgerEntry) == 0
    assert await count(harness, LedgerBalance) == 0


async def test_shared_balances_spread_over_rows_and_read_as_one(harness: Harness) -> None:
    async with harness.runtime.db.transaction() as session:
        for n in range(40):
            pid = f"p-fee-{n}"
            ledger.post(
                session,
                ledger.authorize(payment_id=pid, customer=None, amount=usd(1000)),
                ledger.capture(
                    payment_id=pid, customer=None, authorized=usd(1000), captured=usd(1000)
                ),
                ledger.transfer(payment_id=pid, runner="bob", transfer=usd(900), fee=usd(100)),
            )
    async with harness.runtime.db.read() as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(LedgerBalance)
            .where(LedgerBalance.account == accounts.PLATFORM_FEES.code)
        )
        got = await repository.balances(session, ["platform_fees", "runner:bob", "customer"])
    assert 1 < (rows or 0) <= accounts.PLATFORM_FEES.buckets
    assert {(b.account, b.money.amount_minor, b.payment_count) for b in got} == {
        ("platform_fees", 4000, 0),
        ("runner:bob", 36000, 40),
        ("customer", -40000, 40),
    }


async def test_a_large_batch_is_written_in_chunks(harness: Harness) -> None:
    async with harness.runtime.db.transaction() as session:
        ledger.post(
            session,
            *(
                ledger.authorize(payment_id=f"bulk-{n}", customer=f"c{n % 7}", amount=usd(60))
                for n in range(1200)
            ),
        )
    assert await count(harness, LedgerEntry) == 1200
    assert await count(harness, LedgerPosting) == 2400
    async with harness.runtime.db.read() as session:
        got = await repository.balances(session, [f"customer:c{n}" for n in range(7)])
    assert sum(b.money.amount_minor for b in got) == -1200 * 60
    assert sum(b.payment_count for b in got) == 1200
