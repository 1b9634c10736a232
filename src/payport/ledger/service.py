"""Posting rules: one small function per money movement, each returning a balanced draft.

The payments service calls `post` with a draft in the transaction that
applies the state change causing it; the journal writes it when that
transaction commits (see `journal.py`). A draft's cause repeats the key of
the provider call that moved the money (`capture:{payment_id}`), so posting
the same movement again changes nothing; a movement repeated per refund is
keyed by the refund too (`by_refund`).

Signs: positive flows into an account, negative out of it.

| movement          | postings                                                         |
|-------------------|------------------------------------------------------------------|
| authorize         | customer -A (+1 payment), hold +A                                |
| capture           | hold -A, escrow +C, customer +(A-C) when less than A is captured |
| cancel            | hold -A, customer +A (-1 payment)                                |
| transfer          | escrow -(T+F), runner +T (+1 payment), platform_fees +F          |
| reverse_transfer  | runner -T (-1 payment with the last of it), escrow +T            |
| fee_refund        | refunds -F, escrow +F                                            |
| refund            | escrow -R, customer +R (-1 payment with the last of it)          |
"""

from __future__ import annotations

import dataclasses

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, object_session

from payport.ledger import accounts, journal
from payport.ledger.drafts import Draft, EntryKind, Line
from payport.money import Money


def _draft(kind: EntryKind, payment_id: str, currency: str, *lines: Line) -> Draft:
    """A draft keyed `{kind}:{payment_id}`; lines that move nothing are left out."""
    kept = tuple(line for line in lines if line.amount_minor or line.payment_count)
    return Draft(f"{kind.value}:{payment_id}", kind, payment_id, currency, kept)


# --- posting rules -------------------------------------------------------------------------


def authorize(*, payment_id: str, customer: str | None, amount: Money) -> Draft:
    """The hold: the customer's money is reserved on the card for this payment."""
    return _draft(
        EntryKind.AUTHORIZE,
        payment_id,
        amount.currency,
        Line(accounts.customer(customer), -amount.amount_minor, 1),
        Line(accounts.hold(payment_id), amount.amount_minor),
    )


def capture(*, payment_id: str, customer: str | None, authorized: Money, captured: Money) -> Draft:
    """The hold ends; what was captured moves to escrow and the rest goes back to the customer."""
    released = authorized - captured
    return _draft(
        EntryKind.CAPTURE,
        payment_id,
        captured.currency,
        Line(accounts.hold(payment_id), -authorized.amount_minor),
        Line(accounts.escrow(payment_id), captured.amount_minor),
        Line(accounts.customer(customer), released.amount_minor),
    )


def cancel(*, payment_id: str, customer: str | None, amount: Money) -> Draft:
    """An uncaptured hold released: the customer gets it all back and paid for nothing."""
    return _draft(
        EntryKind.CANCEL,
        payment_id,
        amount.currency,
        Line(accounts.hold(payment_id), -amount.amount_minor),
        Line(accounts.customer(customer), amount.amount_minor, -1),
    )


def transfer(*, payment_id: str, runner: str, transfer: Money, fee: Money) -> Draft:
    """Release: escrow pays the runner's share and the platform fee (released = transfer + fee)."""
    released = transfer.amount_minor + fee.amount_minor
    return _draft(
        EntryKind.TRANSFER,
        payment_id,
        transfer.currency,
        Line(accounts.escrow(payment_id), -released),
        Line(accounts.runner(runner), transfer.amount_minor, 1),
        Line(accounts.PLATFORM_FEES, fee.amount_minor),
    )


def reverse_transfer(
    *, payment_id: str, runner: str, amount: Money, completes: bool = True
) -> Draft:
    """The runner's transfer comes back to escrow, so it can be refunded; the runner's
    payment count drops with the reversal that takes back the last of it (`completes`)."""
    return _draft(
        EntryKind.REVERSE_TRANSFER,
        payment_id,
        amount.currency,
        Line(accounts.runner(runner), -amount.amount_minor, -1 if completes else 0),
        Line(accounts.escrow(payment_id), amount.amount_minor),
    )


def fee_refund(*, payment_id: str, fee: Money) -> Draft:
    """A refund of a released payment includes the platform's fee; the platform bears it."""
    return _draft(
        EntryKind.FEE_REFUND,
        payment_id,
        fee.currency,
        Line(accounts.REFUNDS, -fee.amount_minor),
        Line(accounts.escrow(payment_id), fee.amount_minor),
    )


def refund(
    *, payment_id: str, customer: str | None, amount: Money, completes: bool = True
) -> Draft:
    """Captured money goes back from escrow to the customer, who paid for nothing once the
    refund that gives back the last of it (`completes`) is posted."""
    return _draft(
        EntryKind.REFUND,
        payment_id,
        amount.currency,
        Line(accounts.escrow(payment_id), -amount.amount_minor),
        Line(accounts.customer(customer), amount.amount_minor, -1 if completes else 0),
    )


def by_refund(draft: Draft, refund_id: str) -> Draft:
    """The same movement made for one refund of the payment: `{kind}:{payment_id}:{refund_id}`,
    so each refund posts it once and none collides with a revert's `{kind}:{payment_id}`."""
    return dataclasses.replace(draft, cause=f"{draft.cause}:{refund_id}")


# --- posting -------------------------------------------------------------------------------


def post(session: AsyncSession | Session, *drafts: Draft) -> None:
    """Post `drafts` in the session's transaction: written at its commit, gone if it rolls back."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    journal.pending(sync).extend(drafts)


def post_with(loaded: object, *drafts: Draft) -> None:
    """Post in the transaction whose session loaded `loaded` (for transitions given no session)."""
    session = object_session(loaded)
    if session is None:
        raise RuntimeError(f"{loaded!r} belongs to no session; its ledger entries would be lost")
    post(session, *drafts)
