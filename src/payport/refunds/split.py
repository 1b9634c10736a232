"""How a refund is paid for, and what it posts.

Before a release the captured money is still in escrow and pays the refund alone.
After it, the runner gives back a proportional share (a reversal of their transfer,
Stripe's `reverse_transfer`) and the platform the rest (its fee's share), so escrow
lends nothing. The shares are cumulative: after each refund the total reversed is
floor(total refunded x transfer / captured), so rounding never drifts and the refund
that completes the capture has taken back exactly the transfer and the fee, the
same amounts a revert would.

Amounts are counted on the payment when a refund is sent to the provider (see
`COUNTED`) and posted when it finishes; refunds in between are `in flight`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.ledger import payment_entries as entries
from payport.ledger import service as ledger
from payport.ledger.drafts import Draft
from payport.payments.models import Payment
from payport.refunds.models import Refund
from payport.refunds.states import RefundStatus


@dataclass(frozen=True, slots=True)
class Split:
    """Who pays for one refund of a released payment, in minor units."""

    reversal_minor: int  # taken back from the runner's transfer
    fee_minor: int  # given back by the platform from its fee


def split_refund(payment: Payment) -> Split:
    """The shares of a refund whose amount the payment's refunded total already counts.

    Both shares are cumulative over everything refunded, so they add up to this refund
    (r + f = R) unless money moved outside payport: a refund made at the provider
    directly, which escrow fronted, is then taken back from the runner and the fee
    too, and a reversal made there leaves less to take. Never more than is left.
    """
    captured = payment.amount_captured_minor
    if payment.transfer_id is None or captured <= 0:
        return Split(0, 0)
    refunded, transfer = payment.amount_refunded_minor, payment.transfer_amount_minor
    reversal_due = min(refunded * transfer // captured, transfer)
    fee_due = min(refunded - reversal_due, payment.fee_minor)
    return Split(
        max(reversal_due - entries.reversed_minor(payment), 0),
        max(fee_due - entries.fee_refunded_minor(payment), 0),
    )


def count(payment: Payment, refund: Refund) -> None:
    """Sent to the provider: the payment's totals include this refund from now on."""
    payment.amount_refunded_minor += refund.amount_minor
    split = split_refund(payment)
    refund.transfer_reversal_minor, refund.fee_refund_minor = split.reversal_minor, split.fee_minor
    if split.reversal_minor:
        payment.transfer_reversed_minor = entries.reversed_minor(payment) + split.reversal_minor
    payment.fee_refunded_minor = entries.fee_refunded_minor(payment) + split.fee_minor


def uncount_refund(payment: Payment, refund: Refund) -> None:
    """The customer got nothing back: the refund and the platform's share leave the totals."""
    payment.amount_refunded_minor -= refund.amount_minor
    payment.fee_refunded_minor = entries.fee_refunded_minor(payment) - refund.fee_refund_minor
    refund.fee_refund_minor = 0


def uncount_reversal(payment: Payment, refund: Refund) -> None:
    """The reversal never happened: the runner keeps the share."""
    payment.transfer_reversed_minor = (
        entries.reversed_minor(payment) - refund.transfer_reversal_minor
    )
    refund.transfer_reversal_minor = 0


@dataclass(frozen=True, slots=True)
class InFlight:
    """What a payment's processing refunds have counted but not posted."""

    refund_minor: int = 0
    reversal_minor: int = 0
    fee_minor: int = 0


async def in_flight(session: AsyncSession, payment_id: str, *, besides: str) -> InFlight:
    """The other processing refunds of a payment (read under the payment's lock)."""
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(Refund.amount_minor), 0),
                func.coalesce(func.sum(Refund.transfer_reversal_minor), 0),
                func.coalesce(func.sum(Refund.fee_refund_minor), 0),
            ).where(
                Refund.payment_id == payment_id,
                Refund.status == RefundStatus.PROCESSING.value,
                Refund.id != besides,
            )
        )
    ).one()
    return InFlight(int(row[0]), int(row[1]), int(row[2]))


def post_reversal(
    session: AsyncSession, payment: Payment, refund: Refund, others: InFlight
) -> None:
    """The runner's share came back; their payment count drops with the last of it."""
    if not refund.transfer_reversal_minor:
        return
    posted = entries.reversed_minor(payment) - others.reversal_minor
    draft = entries.reversal(
        payment,
        refund.transfer_reversal_minor,
        completes=posted >= payment.transfer_amount_minor,
    )
    ledger.post(session, ledger.by_refund(draft, refund.id))


def post_refund(session: AsyncSession, payment: Payment, refund: Refund, others: InFlight) -> None:
    """The platform's share into escrow, then escrow to the customer, whose payment count
    drops once every refund giving back the capture is posted."""
    drafts: list[Draft] = []
    if refund.fee_refund_minor:
        drafts.append(entries.fee_share(payment, refund.fee_refund_minor))
    posted = payment.amount_refunded_minor - others.refund_minor
    completes = posted >= payment.amount_captured_minor
    drafts.append(entries.refund(payment, refund.amount_minor, completes=completes))
    ledger.post(session, *(ledger.by_refund(draft, refund.id) for draft in drafts))
