"""One-off invoices: lines, totals and a gap-free number, through billing's invoice model.

The number is taken last in the transaction (billing.invoices.next_number), so the
sequence row stays locked only for the commit and a rolled-back invoice frees its number.
Nothing is charged: a one-off invoice is open until paid, voided or written off.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing import events
from payport.billing.clock import new_id
from payport.billing.invoices import ONE_OFF_REASON, is_one_off, mark_uncollectible, next_number
from payport.billing.models import Invoice, InvoiceLine, Subscription
from payport.billing.schemas import InvalidRequest, requested_currency
from payport.billing.states import InvoiceStatus, check_invoice_move
from payport.errors import NotFound
from payport.invoices.schemas import InvoiceBody, unit_amount_minor
from payport.money import MAX_AMOUNT_MINOR

Inv = InvoiceStatus
INVOICE_FINALIZED = "invoice.finalized"
INVOICE_VOIDED = "invoice.voided"


def build_lines(body: InvoiceBody, currency: str) -> list[InvoiceLine]:
    lines = []
    for index, item in enumerate(body.lines):
        unit = unit_amount_minor(item, currency, index)
        lines.append(
            InvoiceLine(
                kind=item.kind.value,
                description=item.description,
                quantity=item.quantity,
                amount_minor=unit * item.quantity,
                currency=currency,
            )
        )
    total = sum(line.amount_minor for line in lines)
    if total < 0:
        raise InvalidRequest("the lines must not total less than zero", field="lines")
    if total > MAX_AMOUNT_MINOR:
        raise InvalidRequest(f"the total exceeds {MAX_AMOUNT_MINOR} minor units", field="lines")
    return lines


async def create_invoice(
    session: AsyncSession, body: InvoiceBody, *, default_currency: str, issued_at: datetime
) -> Invoice:
    """Create a one-off invoice: open at once unless `draft`; a zero total is paid at once."""
    currency = requested_currency(body.currency, default_currency)
    lines = build_lines(body, currency)
    if body.subscription_id is not None:
        subscription = await session.get(Subscription, body.subscription_id)
        if subscription is None or subscription.user_id != body.user_id:
            raise NotFound("no such subscription for this user", field="subscription_id")
    total = sum(line.amount_minor for line in lines)
    invoice = Invoice(
        id=new_id("in_"),
        subscription_id=body.subscription_id,
        user_id=body.user_id,
        currency=currency,
        status=Inv.DRAFT.value,
        billing_reason=ONE_OFF_REASON,
        issued_at=issued_at,
        attempt_count=0,
        subtotal_minor=total,
        total_minor=total,
        starting_balance_minor=0,
        ending_balance_minor=0,
        amount_due_minor=total,
        amount_paid_minor=0,
        number=await next_number(session, issued_at),  # last: see the module docstring
    )
    session.add(invoice)
    for line in lines:
        line.invoice_id = invoice.id
        line.subscription_id = body.subscription_id
        session.add(line)
    events.invoice_event(session, events.INVOICE_CREATED, invoice)
    if not body.draft:
        finalize(session, invoice, at=issued_at)
    return invoice


def finalize(session: AsyncSession, invoice: Invoice, *, at: datetime) -> None:
    """Draft to open (or straight to paid when nothing is due)."""
    invoice.status = check_invoice_move(invoice.invoice_status, Inv.OPEN).value
    invoice.finalized_at = at
    events.invoice_event(session, INVOICE_FINALIZED, invoice)
    if invoice.amount_due_minor == 0:
        invoice.status = check_invoice_move(Inv.OPEN, Inv.PAID).value
        invoice.paid_at = invoice.closed_at = at
        events.invoice_event(session, events.INVOICE_PAID, invoice)


def void(session: AsyncSession, invoice: Invoice, *, at: datetime) -> None:
    """Void: a mistake, never collected; only a one-off invoice is voided here, since a
    subscription's invoice carries the subscription's state with it."""
    if not is_one_off(invoice):
        raise InvalidRequest("only one-off invoices can be voided here", field="invoice_id")
    invoice.status = check_invoice_move(invoice.invoice_status, Inv.VOID).value
    invoice.next_payment_attempt = None
    invoice.closed_at = at
    events.invoice_event(session, INVOICE_VOIDED, invoice)


def write_off(session: AsyncSession, invoice: Invoice, *, at: datetime) -> None:
    """Open to uncollectible: the customer is not expected to pay; nothing posts."""
    if not is_one_off(invoice):
        raise InvalidRequest("only one-off invoices are written off here", field="invoice_id")
    mark_uncollectible(session, invoice, at=at)


async def get_invoice(
    session: AsyncSession, invoice_id: str, *, for_update: bool = False
) -> Invoice:
    invoice = await session.get(Invoice, invoice_id, with_for_update=for_update)
    if invoice is None:
        raise NotFound(f"invoice {invoice_id} not found", field="invoice_id")
    return invoice


async def invoices_of_customer(
    session: AsyncSession, user_id: str, *, status: InvoiceStatus | None, limit: int
) -> Sequence[Invoice]:
    """A customer's invoices, newest first (by number within a moment)."""
    query = select(Invoice).where(Invoice.user_id == user_id)
    if status is not None:
        query = query.where(Invoice.status == status.value)
    query = query.order_by(Invoice.issued_at.desc(), Invoice.number.desc()).limit(limit)
    return list(await session.scalars(query))
