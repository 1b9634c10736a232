"""`payport ledger check`: prove the ledger adds up, and name every payment where it does not.

Each check is one SQL statement that returns only what is wrong, so a clean
database of millions of payments streams nothing back and each check sees
one consistent snapshot:

1. every entry's postings sum to zero per currency;
2. every account's balance rows equal the sum of its postings;
3. every payment's hold and escrow hold what its status says (nothing once
   FAILED or REVERTED; the authorized amount while AUTHORIZED; the captured
   amount, less posted refunds, while captured and not transferred; what came
   back from the runner and the fee, less posted refunds, once released).
   A refund still processing is counted on its payment but not yet posted:
   the check takes it off the counted totals rather than skip the payment;
4. every release split exactly: released (captured) = transfer + fee, as the
   payment recorded it and as the ledger posted it.

With a provider, captured, refunded and transferred totals per payment are
compared with what the provider itself reports. A refund still processing
may have been done at the provider already: a difference within what such
refunds counted is a note, not a problem. On a live system a payment whose
provider call has happened but whose commit has not can show up there; run
it again to tell a race from a real difference.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from payport.db import Database
from payport.ledger.accounts import AccountKind
from payport.ledger.drafts import EntryKind
from payport.ledger.models import LedgerBalance, LedgerEntry, LedgerPosting
from payport.payments.models import Payment
from payport.payments.states import PaymentStatus
from payport.providers import base
from payport.providers.errors import with_retries
from payport.refunds.models import Refund
from payport.refunds.states import RefundStatus

S = PaymentStatus
_PROVIDER_PAGE = 200  # payments compared with the provider per round
_PROVIDER_CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class Problem:
    message: str
    payment_id: str | None = None
    account: str | None = None

    def __str__(self) -> str:
        if self.payment_id is not None:
            return f"payment {self.payment_id}: {self.message}"
        if self.account is not None:
            return f"account {self.account}: {self.message}"
        return self.message


@dataclass(slots=True)
class Report:
    problems: list[Problem] = field(default_factory=list)
    entries: int = 0
    payments: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def payment_ids(self) -> list[str]:
        """The offending payments, each once, in the order found."""
        return list(dict.fromkeys(p.payment_id for p in self.problems if p.payment_id))


async def check(db: Database, *, provider: base.PaymentProvider | None = None) -> Report:
    report = Report()
    async with db.read() as session:
        report.entries = await session.scalar(select(func.count()).select_from(LedgerEntry)) or 0
        report.payments = await session.scalar(select(func.count()).select_from(Payment)) or 0
        report.problems += await unbalanced_entries(session)
        report.problems += await balances_off_postings(session)
        report.problems += await escrow_off_status(session)
        report.problems += await releases_not_split(session)
    if provider is not None:
        await compare_with_provider(db, provider, report)
    return report


# --- 1. entries balance ----------------------------------------------------------------------


async def unbalanced_entries(session: AsyncSession) -> list[Problem]:
    total = func.sum(LedgerPosting.amount_minor)
    rows = await session.execute(
        select(LedgerEntry.cause, LedgerEntry.payment_id, LedgerPosting.currency, total)
        .join(LedgerPosting, LedgerPosting.entry_id == LedgerEntry.id)
        .group_by(LedgerEntry.id, LedgerEntry.cause, LedgerEntry.payment_id, LedgerPosting.currency)
        .having(total != 0)
        .order_by(LedgerEntry.id)
    )
    return [
        Problem(f"entry {cause} does not balance: its {currency} postings sum to {off}", pid)
        for cause, pid, currency, off in rows
    ]


# --- 2. balances equal their postings ----------------------------------------------------------


async def balances_off_postings(session: AsyncSession) -> list[Problem]:
    """Postings minus balance rows, per account and currency: anything left over is drift."""
    both = union_all(
        select(
            LedgerPosting.account,
            LedgerPosting.currency,
            LedgerPosting.amount_minor.label("amount"),
            LedgerPosting.payment_count.label("count"),
        ),
        select(
            LedgerBalance.account,
            LedgerBalance.currency,
            (-LedgerBalance.balance_minor).label("amount"),
            (-LedgerBalance.payment_count).label("count"),
        ),
    ).subquery()
    amount, count = func.sum(both.c.amount), func.sum(both.c.count)
    rows = await session.execute(
        select(both.c.account, both.c.currency, amount, count)
        .group_by(both.c.account, both.c.currency)
        .having(or_(amount != 0, count != 0))
        .order_by(both.c.account)
    )
    return [
        Problem(
            f"{currency} balance differs from the sum of its postings by {-off} "
            f"(payment count by {-off_count})",
            payment_id=_payment_of(account),
            account=account,
        )
        for account, currency, off, off_count in rows
    ]


def _payment_of(account: str) -> str | None:
    kind, _, key = account.partition(":")
    return key if kind in (AccountKind.HOLD, AccountKind.ESCROW) and key else None


# --- 3. escrow matches status ----------------------------------------------------------------


def _expected_hold() -> ColumnElement[Any]:
    """An uncaptured AUTHORIZED payment holds its amount; nothing else holds anything."""
    held = and_(Payment.status == S.AUTHORIZED.value, Payment.amount_captured_minor == 0)
    return case((held, Payment.amount_minor), else_=0)


def _in_flight() -> Any:
    """Per payment, what its processing refunds counted on it but have not posted yet."""
    processing = Refund.status == RefundStatus.PROCESSING.value
    return (
        select(
            Refund.payment_id,
            func.sum(Refund.amount_minor).label("refund"),
            func.sum(Refund.transfer_reversal_minor).label("reversal"),
            func.sum(Refund.fee_refund_minor).label("fee"),
        )
        .where(processing)
        .group_by(Refund.payment_id)
        .subquery()
    )


def _expected_escrow(flight: Any) -> ColumnElement[Any]:
    """Captured money waits in escrow until transferred; FAILED and REVERTED keep nothing.

    Refunds leave escrow as they are posted: before the release they come out of the
    captured money. After it the release moved all of it out (the split is check 4's
    business): what came back from the runner's transfer (payport's refunds and outside
    reversals) and from the platform's fee is in escrow, less what went to the customer,
    so outside refunds, which the platform fronts, take it negative. A revert settles
    both to zero. A refund still processing is counted on the payment but not posted,
    so its amounts are taken off the counted totals.
    """
    live = Payment.status.in_([S.AUTHORIZED.value, S.SUCCEEDED.value])
    refunded = func.coalesce(Payment.amount_refunded_minor, 0) - func.coalesce(flight.c.refund, 0)
    waiting = and_(live, Payment.transfer_id.is_(None))
    released = and_(live, Payment.transfer_id.is_not(None))
    came_back = (
        func.coalesce(Payment.transfer_reversed_minor, 0)
        - func.coalesce(flight.c.reversal, 0)
        + func.coalesce(Payment.fee_refunded_minor, 0)
        - func.coalesce(flight.c.fee, 0)
    )
    return case(
        (waiting, Payment.amount_captured_minor - refunded),
        (released, came_back - refunded),
        else_=0,
    )


def _balance_of(prefix: str) -> Any:
    """A payment's own account balance (its one bucket row), as a correlated scalar."""
    return (
        select(func.coalesce(func.sum(LedgerBalance.balance_minor), 0))
        .where(
            LedgerBalance.account == literal(prefix) + Payment.id,
            LedgerBalance.currency == Payment.currency,
        )
        .scalar_subquery()
    )


async def escrow_off_status(session: AsyncSession) -> list[Problem]:
    hold = _balance_of(f"{AccountKind.HOLD.value}:")
    escrow = _balance_of(f"{AccountKind.ESCROW.value}:")
    flight = _in_flight()
    expected_hold, expected_escrow = _expected_hold(), _expected_escrow(flight)
    inner = (
        select(
            Payment.id,
            Payment.status,
            hold.label("hold"),
            escrow.label("escrow"),
            expected_hold.label("expected_hold"),
            expected_escrow.label("expected_escrow"),
        )
        .outerjoin(flight, flight.c.payment_id == Payment.id)
        .subquery()
    )
    rows = await session.execute(
        select(inner).where(
            or_(inner.c.hold != inner.c.expected_hold, inner.c.escrow != inner.c.expected_escrow)
        )
    )
    return [
        Problem(
            f"{status}: hold has {int(held)} (expected {int(want_held)}), "
            f"escrow has {int(kept)} (expected {int(want_kept)})",
            payment_id,
        )
        for payment_id, status, held, kept, want_held, want_kept in rows
    ]


# --- 4. released = transfer + fee -------------------------------------------------------------


async def releases_not_split(session: AsyncSession) -> list[Problem]:
    escrow_account = literal(f"{AccountKind.ESCROW.value}:") + Payment.id
    is_fee = LedgerPosting.account == AccountKind.PLATFORM_FEES.value
    is_escrow = LedgerPosting.account == escrow_account

    def posted(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((condition, LedgerPosting.amount_minor), else_=0)), 0)

    released = -posted(is_escrow)
    fee = posted(is_fee)
    to_runner = posted(and_(~is_fee, ~is_escrow))
    entries = func.count(LedgerEntry.id)
    cause = literal(f"{EntryKind.TRANSFER.value}:") + Payment.id
    rows = await session.execute(
        select(
            Payment.id,
            Payment.amount_captured_minor,
            Payment.transfer_amount_minor,
            Payment.fee_minor,
            released,
            to_runner,
            fee,
            entries,
        )
        .outerjoin(LedgerEntry, LedgerEntry.cause == cause)
        .outerjoin(LedgerPosting, LedgerPosting.entry_id == LedgerEntry.id)
        .where(Payment.transfer_id.is_not(None))
        .group_by(
            Payment.id,
            Payment.amount_captured_minor,
            Payment.transfer_amount_minor,
            Payment.fee_minor,
        )
        .having(
            or_(
                entries == 0,
                Payment.transfer_amount_minor + Payment.fee_minor != Payment.amount_captured_minor,
                released != Payment.amount_captured_minor,
                to_runner != Payment.transfer_amount_minor,
                fee != Payment.fee_minor,
            )
        )
    )
    return [_split_problem(*row) for row in rows]


def _split_problem(
    payment_id: str,
    captured: int,
    transfer: int,
    fee: int,
    posted_released: int,
    posted_transfer: int,
    posted_fee: int,
    entries: int,
) -> Problem:
    if not entries:
        return Problem("released, but no transfer entry was posted", payment_id)
    return Problem(
        f"released {captured} should be transfer + fee = {transfer} + {fee}; "
        f"the ledger posted {posted_released} = {posted_transfer} + {posted_fee}",
        payment_id,
    )


# --- provider ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Moved:
    """Money a payment moved, as the ledger posted it or the provider reports it."""

    captured: int
    refunded: int | None
    transferred: int


async def compare_with_provider(
    db: Database, provider: base.PaymentProvider, report: Report
) -> None:
    after = ""
    while True:
        async with db.read() as session:
            page = list(
                (
                    await session.scalars(
                        select(Payment)
                        .where(Payment.payment_intent_id.is_not(None), Payment.id > after)
                        .order_by(Payment.id)
                        .limit(_PROVIDER_PAGE)
                    )
                ).all()
            )
            if not page:
                return
            ids = [p.id for p in page]
            posted = await _posted_by_payment(session, ids)
            flights = await _in_flight_by_payment(session, ids)
        truths = await _provider_truths(db, provider, page)
        for payment, truth in zip(page, truths, strict=True):
            mine = posted.get(payment.id) or _Moved(0, 0, 0)
            flight = flights.get(payment.id)
            if flight is not None:
                mine = _caught_up(mine, truth, flight, report.notes, payment.id)
            report.problems += _differences(payment.id, mine, truth)
        after = page[-1].id


async def _in_flight_by_payment(
    session: AsyncSession, payment_ids: Sequence[str]
) -> dict[str, _Moved]:
    """Refunded and reversed by processing refunds: the provider may be that far ahead."""
    flight = _in_flight()
    rows = await session.execute(
        select(flight.c.payment_id, flight.c.refund, flight.c.reversal).where(
            flight.c.payment_id.in_(payment_ids)
        )
    )
    return {pid: _Moved(0, int(refund), -int(reversal)) for pid, refund, reversal in rows}


def _caught_up(mine: _Moved, truth: _Moved, flight: _Moved, notes: list[str], pid: str) -> _Moved:
    """The ledger as it will be once processing refunds post what the provider already did:
    a difference within what they counted is noted; anything beyond stays a problem."""
    refunded, transferred = mine.refunded, mine.transferred
    if (
        refunded is not None
        and truth.refunded is not None
        and refunded <= truth.refunded <= refunded + (flight.refunded or 0)
    ):
        refunded = truth.refunded
    if transferred + flight.transferred <= truth.transferred <= transferred:
        transferred = truth.transferred
    caught = _Moved(mine.captured, refunded, transferred)
    if caught != mine:
        notes.append(f"payment {pid}: a refund is processing; the provider has moved its part")
    return caught


async def _posted_by_payment(
    session: AsyncSession, payment_ids: Sequence[str]
) -> dict[str, _Moved]:
    escrow = literal(f"{AccountKind.ESCROW.value}:") + LedgerEntry.payment_id
    on_escrow = LedgerPosting.account == escrow
    to_runner = LedgerPosting.account.like(f"{AccountKind.RUNNER.value}%")

    def total(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((condition, LedgerPosting.amount_minor), else_=0)), 0)

    rows = await session.execute(
        select(
            LedgerEntry.payment_id,
            total(and_(LedgerEntry.kind == EntryKind.CAPTURE.value, on_escrow)),
            total(and_(LedgerEntry.kind == EntryKind.REFUND.value, on_escrow)),
            total(to_runner),
        )
        .join(LedgerPosting, LedgerPosting.entry_id == LedgerEntry.id)
        .where(LedgerEntry.payment_id.in_(payment_ids))
        .group_by(LedgerEntry.payment_id)
    )
    return {pid: _Moved(captured, -refunded, sent) for pid, captured, refunded, sent in rows}


async def _provider_truths(
    db: Database, provider: base.PaymentProvider, payments: Sequence[Payment]
) -> list[_Moved]:
    gate = asyncio.Semaphore(_PROVIDER_CONCURRENCY)

    async def one(payment: Payment) -> _Moved:
        async with gate:
            return await _provider_truth(db, provider, payment)

    return list(await asyncio.gather(*(one(payment) for payment in payments)))


async def _provider_truth(db: Database, provider: base.PaymentProvider, payment: Payment) -> _Moved:
    intent_id = payment.payment_intent_id or ""
    intent = await with_retries(lambda: provider.retrieve_payment_intent(intent_id))
    transferred = 0
    if payment.transfer_id is not None:
        transfer_id = payment.transfer_id
        transfer = await with_retries(lambda: provider.retrieve_transfer(transfer_id))
        transferred = transfer.amount_minor - transfer.amount_reversed
    refunded = 0
    if intent.latest_charge is not None:
        charge_id = intent.latest_charge
        charge = await with_retries(lambda: provider.retrieve_charge(charge_id))
        # A canceled hold shows its whole amount refunded on an uncaptured charge, as on
        # Stripe; no money was captured, so that counts as nothing refunded.
        refunded = charge.amount_refunded if charge.captured else 0
    return _Moved(intent.amount_received, refunded, transferred)


def _differences(payment_id: str, ledger: _Moved, truth: _Moved) -> list[Problem]:
    pairs = [
        ("captured", ledger.captured, truth.captured),
        ("refunded", ledger.refunded, truth.refunded),
        ("transferred", ledger.transferred, truth.transferred),
    ]
    return [
        Problem(f"{what}: the ledger has {mine}, the provider {theirs}", payment_id)
        for what, mine, theirs in pairs
        if theirs is not None and mine != theirs
    ]
