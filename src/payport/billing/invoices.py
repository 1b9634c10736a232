"""Invoices: gap-free numbers, lines and totals, the customer balance, and being paid.

Totals follow Stripe: `total` is the sum of the lines; the customer's credit
balance is applied when the invoice is finalized (`starting_balance` ->
`ending_balance`); a negative total adds to the balance; an amount due below
the currency's minimum charge is carried to the balance instead of charged.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing import events
from payport.billing.clock import new_id
from payport.billing.models import (
    Invoice,
    InvoiceLine,
    InvoiceSequence,
    PaymentAttempt,
    Plan,
    Subscription,
)
from payport.billing.states import InvoiceStatus, check_invoice_move
from payport.db import dialect_insert
from payport.ledger import accounts
from payport.ledger import service as ledger
from payport.ledger.billing_entries import invoice_paid
from payport.ledger.models import LedgerBalance
from payport.money import minimum_charge_minor

Inv = InvoiceStatus
_ADVISORY_SPACE = 7207  # pg_advisory_xact_lock(space, key): billing's own key space


async def next_number(session: AsyncSession, issued_at: datetime) -> str:
    """`INV-2026-000123`: one sequence per year, incremented under the row's lock in the
    caller's transaction, so a rolled-back invoice gives its number back."""
    prefix = f"INV-{issued_at.year}"
    table = cast(Table, InvoiceSequence.__table__)
    upsert = dialect_insert(session.get_bind().dialect.name)(table).values(
        prefix=prefix, last_value=1
    )
    statement = upsert.on_conflict_do_update(
        index_elements=["prefix"], set_={"last_value": table.c.last_value + 1}
    ).returning(table.c.last_value)
    value = (await session.execute(statement)).scalar_one()
    return f"{prefix}-{value:06d}"


def plan_line(plan: Plan, quantity: int, period: tuple[datetime, datetime]) -> InvoiceLine:
    return InvoiceLine(
        kind="plan",
        description=f"{quantity} x {plan.name} ({plan.billing_cycle})",
        plan_id=plan.id,
        quantity=quantity,
        amount_minor=plan.amount_minor * quantity,
        currency=plan.currency,
        period_start=period[0],
        period_end=period[1],
    )


def cycle_key(subscription: Subscription, index: int) -> str:
    """One invoice per period: periods are counted from the anchor, which a change of
    billing cycle resets."""
    return f"{subscription.id}:{int(subscription.billing_cycle_anchor.timestamp())}:{index}"


# The invoice a subscription's end makes (its last period's usage, pending items, a credit).
FINAL_REASON = "subscription_cancel"


def final_key(subscription: Subscription) -> str:
    """A subscription ends once, so it has at most one final invoice (unique like a cycle's)."""
    return f"{subscription.id}:final"


def is_final(invoice: Invoice) -> bool:
    return invoice.billing_reason == FINAL_REASON


# A one-off invoice (POST /api/v1/invoices): it never moves a subscription it names.
ONE_OFF_REASON = "manual"


def is_one_off(invoice: Invoice) -> bool:
    return invoice.billing_reason == ONE_OFF_REASON


async def pending_lines(session: AsyncSession, subscription_id: str) -> list[InvoiceLine]:
    """Items waiting for the subscription's next invoice (prorations), oldest first."""
    rows = await session.scalars(
        select(InvoiceLine)
        .where(InvoiceLine.subscription_id == subscription_id, InvoiceLine.invoice_id.is_(None))
        .order_by(InvoiceLine.id)
    )
    return list(rows)


async def lines_of(session: AsyncSession, invoice_id: str) -> list[InvoiceLine]:
    rows = await session.scalars(
        select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.id)
    )
    return list(rows)


async def lock_balance(session: AsyncSession, user_id: str, currency: str) -> None:
    """Serialize the transactions that use or move one customer's balance (PostgreSQL; on
    SQLite every write transaction is serialized already). Held until commit, when the
    ledger writes the balance, so two invoices cannot both spend the same credit."""
    if session.get_bind().dialect.name != "postgresql":
        return
    key = zlib.crc32(f"billing-balance:{user_id}:{currency}".encode())
    await session.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"), {
        "space": _ADVISORY_SPACE, "key": key - 2**31})  # fmt: skip


async def available_balance(session: AsyncSession, user_id: str, currency: str) -> int:
    """The customer's balance as the ledger has it, less what open invoices already claimed."""
    await lock_balance(session, user_id, currency)
    code = accounts.customer_credit(user_id).code
    posted = await session.scalar(
        select(func.coalesce(func.sum(LedgerBalance.balance_minor), 0)).where(
            LedgerBalance.account == code, LedgerBalance.currency == currency
        )
    )
    change = Invoice.ending_balance_minor - Invoice.starting_balance_minor
    claimed = await session.scalar(
        select(func.coalesce(func.sum(change), 0)).where(
            Invoice.user_id == user_id,
            Invoice.currency == currency,
            Invoice.status == Inv.OPEN.value,
        )
    )
    return int(posted or 0) + int(claimed or 0)


def settle_balance(total_minor: int, balance_minor: int, currency: str) -> tuple[int, int]:
    """(amount due, ending balance) for an invoice of `total_minor` on `balance_minor`.

    Always `due == total + ending - balance`, which is what the ledger entry relies on.
    """
    if total_minor <= 0:
        due, ending = 0, balance_minor - total_minor
    elif balance_minor > 0:
        applied = min(balance_minor, total_minor)
        due, ending = total_minor - applied, balance_minor - applied
    else:
        due, ending = total_minor - balance_minor, 0
    if 0 < due < minimum_charge_minor(currency):
        due, ending = 0, ending - due
    return due, ending


async def open_invoice(
    session: AsyncSession,
    subscription: Subscription,
    *,
    reason: str,
    currency: str,
    issued_at: datetime,
    new_lines: Sequence[InvoiceLine],
    period: tuple[datetime, datetime] | None = None,
    cycle_key: str | None = None,
    collect: bool = True,
    with_pending: bool = True,
) -> Invoice:
    """Create, total and finalize an invoice with `new_lines` and every pending item
    (none when `with_pending` is false).

    Nothing due: paid at once. Otherwise open, with a charge attempt due now
    (unless `collect` is false: no payment method to charge yet).
    """
    pending = await pending_lines(session, subscription.id) if with_pending else []
    lines = [*(line for line in pending if line.currency == currency), *new_lines]
    total = sum(line.amount_minor for line in lines)
    starting = await available_balance(session, subscription.user_id, currency)
    due, ending = settle_balance(total, starting, currency)
    invoice = Invoice(
        id=new_id("in_"),
        # Taken last: the sequence row stays locked from here to the commit.
        number=await next_number(session, issued_at),
        subscription_id=subscription.id,
        user_id=subscription.user_id,
        currency=currency,
        status=Inv.DRAFT.value,
        billing_reason=reason,
        cycle_key=cycle_key,
        period_start=period[0] if period else None,
        period_end=period[1] if period else None,
        issued_at=issued_at,
        attempt_count=0,
        subtotal_minor=total,
        total_minor=total,
        starting_balance_minor=starting,
        ending_balance_minor=ending,
        amount_due_minor=due,
        amount_paid_minor=0,
    )
    session.add(invoice)
    for line in lines:
        line.invoice_id = invoice.id
        line.subscription_id = subscription.id
        session.add(line)
    invoice.status = check_invoice_move(Inv.DRAFT, Inv.OPEN).value
    invoice.finalized_at = issued_at
    subscription.latest_invoice_id = invoice.id
    events.invoice_event(session, events.INVOICE_CREATED, invoice)
    if due == 0:
        await mark_paid(session, invoice, lines, at=issued_at, payment_intent_id=None)
    elif collect:
        invoice.next_payment_attempt = issued_at
    return invoice


async def mark_paid(
    session: AsyncSession,
    invoice: Invoice,
    lines: Sequence[InvoiceLine],
    *,
    at: datetime,
    payment_intent_id: str | None,
    attempt: PaymentAttempt | None = None,
    out_of_band: bool = False,
) -> None:
    """Paid: the amount due collected (or nothing was due, or it was paid outside payport);
    the ledger entry posts with it."""
    invoice.status = check_invoice_move(invoice.invoice_status, Inv.PAID).value
    invoice.paid_out_of_band = out_of_band
    invoice.amount_paid_minor = invoice.amount_due_minor
    invoice.paid_at = invoice.closed_at = at
    invoice.next_payment_attempt = None
    invoice.payment_intent_id = payment_intent_id
    if invoice.ending_balance_minor != invoice.starting_balance_minor:
        await lock_balance(session, invoice.user_id, invoice.currency)
    ledger.post(
        session,
        invoice_paid(
            invoice_id=invoice.id,
            user_id=invoice.user_id,
            currency=invoice.currency,
            line_amounts=[line.amount_minor for line in lines],
            amount_paid_minor=invoice.amount_paid_minor,
            balance_change_minor=invoice.ending_balance_minor - invoice.starting_balance_minor,
            out_of_band=out_of_band,
        ),
    )
    events.invoice_event(session, events.INVOICE_PAID, invoice, attempt=attempt)


def mark_uncollectible(session: AsyncSession, invoice: Invoice, *, at: datetime) -> None:
    """Dunning gave up: no more attempts; nothing was collected, so nothing posts."""
    invoice.status = check_invoice_move(invoice.invoice_status, Inv.UNCOLLECTIBLE).value
    invoice.next_payment_attempt = None
    invoice.closed_at = at
    events.invoice_event(session, events.INVOICE_UNCOLLECTIBLE, invoice)


async def open_invoices_of(session: AsyncSession, subscription_id: str) -> list[Invoice]:
    rows = await session.scalars(
        select(Invoice)
        .where(Invoice.subscription_id == subscription_id, Invoice.status == Inv.OPEN.value)
        .order_by(Invoice.issued_at, Invoice.id)
    )
    return list(rows)
