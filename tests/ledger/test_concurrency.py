"""Many transactions posting at once on PostgreSQL end with exact balances, and never deadlock.

Every payment here posts to the same shared accounts (platform fees, refunds,
a few customers and runners), the hot rows a naive ledger would serialize on.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from payport.db import Database
from payport.ledger import repository
from payport.ledger import service as ledger
from payport.ledger.check import balances_off_postings, unbalanced_entries
from payport.ledger.drafts import Draft
from payport.money import Money
from tests.harness import Harness, nested_authorize
from tests.ledger.conftest import FEE_BPS
from tests.ledger.helpers import assert_ledger_clean

PAYMENTS = 400
CUSTOMERS = 5
RUNNERS = 3


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[Harness]:
    async with Harness.started(postgres_url, PLATFORM_FEE_BPS=FEE_BPS) as running:
        yield running


def path_of(n: int) -> list[list[Draft]]:
    """Payment n's transactions: hold; capture and release; every 4th is refunded after."""
    pid, customer, runner = f"conc-{n}", f"cust-{n % CUSTOMERS}", f"run-{n % RUNNERS}"
    amount = Money(1000 + n, "usd")
    fee = amount.fee(FEE_BPS)
    steps = [
        [ledger.authorize(payment_id=pid, customer=customer, amount=amount)],
        [
            ledger.capture(payment_id=pid, customer=customer, authorized=amount, captured=amount),
            ledger.transfer(payment_id=pid, runner=runner, transfer=amount - fee, fee=fee),
        ],
    ]
    if n % 4 == 0:
        steps.append(
            [
                ledger.reverse_transfer(payment_id=pid, runner=runner, amount=amount - fee),
                ledger.fee_refund(payment_id=pid, fee=fee),
                ledger.refund(payment_id=pid, customer=customer, amount=amount),
            ]
        )
    return steps


def expected_balances() -> Counter[str]:
    totals: Counter[str] = Counter()
    for n in range(PAYMENTS):
        for transaction in path_of(n):
            for draft in transaction:
                for line in draft.lines:
                    totals[line.account.code] += line.amount_minor
    return totals


class Overlap:
    """How many transactions were open at once, at most."""

    def __init__(self) -> None:
        self.open = self.most = 0

    async def post(self, db: Database, drafts: list[Draft]) -> None:
        async with db.transaction() as session:
            self.open += 1
            self.most = max(self.most, self.open)
            ledger.post(session, *drafts)
            await asyncio.sleep(0)  # let the others in while this one is open
            self.open -= 1


async def test_concurrent_postings_to_shared_accounts_sum_exactly(pg: Harness) -> None:
    db, overlap = pg.runtime.db, Overlap()

    async def pay(n: int) -> None:
        for transaction in path_of(n):
            await overlap.post(db, transaction)

    async def replay(n: int) -> None:  # a re-delivered copy racing the original
        for transaction in reversed(path_of(n)):
            await overlap.post(db, transaction)

    await asyncio.gather(
        *(pay(n) for n in range(PAYMENTS)), *(replay(n) for n in range(0, PAYMENTS, 3))
    )
    assert overlap.most > 8

    expected = expected_balances()
    async with db.read() as session:
        got = await repository.balances(session, sorted(expected))
        assert await unbalanced_entries(session) == []
        assert await balances_off_postings(session) == []
    assert {b.account: b.money.amount_minor for b in got if b.money.amount_minor} == {
        account: amount for account, amount in expected.items() if amount
    }
    refunded = len(range(0, PAYMENTS, 4))
    by_account = {b.account: b for b in got}
    assert (
        sum(by_account[f"customer:cust-{c}"].payment_count for c in range(CUSTOMERS))
        == PAYMENTS - refunded
    )
    assert expected["platform_fees"] > 0 and expected["refunds"] < 0


async def test_concurrent_commands_through_payport_end_with_exact_balances(pg: Harness) -> None:
    count = 60
    for n in range(count):
        await pg.command("authorize_payment", nested_authorize(f"order-conc-{n}", 1000 + n))
    await pg.drain()  # settled concurrently, in coalesced transactions
    payments = [await pg.payment_by_order(f"order-conc-{n}") for n in range(count)]
    assert {p["status"] for p in payments} == {"AUTHORIZED"}
    for n, payment in enumerate(payments):
        runner = f"runner-{n % RUNNERS}"
        await pg.command(
            "release_payment",
            {
                "payment_id": payment["paymentId"],
                "runner_id": runner,
                "runner_connect_account_id": f"acct_{runner}",
            },
        )
    await pg.drain()
    for payment in payments[::3]:
        await pg.command("revert_payment", {"payment_id": payment["paymentId"]})
    await pg.drain()

    amounts = [Money(1000 + n, "usd") for n in range(count)]
    kept = [m for n, m in enumerate(amounts) if n % 3]
    fees = sum(m.fee(FEE_BPS).amount_minor for m in amounts)
    refunded_fees = sum(m.fee(FEE_BPS).amount_minor for n, m in enumerate(amounts) if n % 3 == 0)
    async with pg.runtime.db.read() as session:
        got = {
            b.account: (b.money.amount_minor, b.payment_count)
            for b in await repository.balances(
                session,
                ["customer:user_alice", "platform_fees", "refunds"]
                + [f"runner:runner-{r}" for r in range(RUNNERS)],
            )
        }
    assert got["customer:user_alice"] == (-sum(m.amount_minor for m in kept), len(kept))
    assert got["platform_fees"] == (fees, 0)
    assert got["refunds"] == (-refunded_fees, 0)
    to_runners = sum(got[f"runner:runner-{r}"][0] for r in range(RUNNERS))
    assert to_runners == sum((m - m.fee(FEE_BPS)).amount_minor for m in kept)
    await assert_ledger_clean(pg)
