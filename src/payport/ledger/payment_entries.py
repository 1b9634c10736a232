"""The entries a payment's money movements post, read off the payment's own fields.

The payments transitions call these as they move a payment; migration 0002
calls `opening` for payments that existed before the ledger. One place maps
a payment to the posting rules, so both always agree.
"""

from __future__ import annotations

from payport.ledger import service as rules
from payport.ledger.drafts import Draft
from payport.money import Money
from payport.payments.models import Payment
from payport.payments.states import PaymentStatus

S = PaymentStatus


def hold(payment: Payment) -> Draft:
    return rules.authorize(
        payment_id=payment.id, customer=payment.customer_user_id, amount=payment.money
    )


def capture(payment: Payment) -> Draft:
    captured = Money(payment.amount_captured_minor, payment.currency)
    return rules.capture(
        payment_id=payment.id,
        customer=payment.customer_user_id,
        authorized=payment.money,
        captured=captured,
    )


def transfer(payment: Payment) -> Draft:
    return rules.transfer(
        payment_id=payment.id,
        runner=payment.runner_id or "",
        transfer=Money(payment.transfer_amount_minor, payment.currency),
        fee=Money(payment.fee_minor, payment.currency),
    )


def cancel(payment: Payment) -> Draft:
    return rules.cancel(
        payment_id=payment.id, customer=payment.customer_user_id, amount=payment.money
    )


def reversal(payment: Payment, amount_minor: int, *, completes: bool = True) -> Draft:
    """Part or the rest of the runner's transfer back in escrow."""
    amount = Money(amount_minor, payment.currency)
    return rules.reverse_transfer(
        payment_id=payment.id, runner=payment.runner_id or "", amount=amount, completes=completes
    )


def fee_share(payment: Payment, amount_minor: int) -> Draft:
    """The platform gives back (part of) its fee, for a refund of a released payment."""
    return rules.fee_refund(payment_id=payment.id, fee=Money(amount_minor, payment.currency))


def refund(payment: Payment, amount_minor: int, *, completes: bool = True) -> Draft:
    """Escrow pays the customer back (part of) the capture."""
    amount = Money(amount_minor, payment.currency)
    return rules.refund(
        payment_id=payment.id,
        customer=payment.customer_user_id,
        amount=amount,
        completes=completes,
    )


def revert(payment: Payment, *, refunded_minor: int | None = None) -> list[Draft]:
    """What a revert moves, asked before the move: nothing before authorization, the hold,
    or the captured money (the runner's transfer and the platform's fee come back first).

    Only what is left comes back: refunds and outside reversals before the revert took
    their part already (`transfer_reversed_minor`, `fee_refunded_minor`). `refunded_minor`
    is what the revert's own refund returned; without it (opening entries, written before
    outside refunds were recorded) the stored total."""
    if not payment.captured:
        return [cancel(payment)] if payment.payment_status is S.AUTHORIZED else []
    drafts: list[Draft] = []
    if payment.transfer_reversal_id is not None:
        drafts.append(reversal(payment, payment.transfer_amount_minor - reversed_minor(payment)))
    fee_left = payment.fee_minor - fee_refunded_minor(payment)
    if payment.transfer_id is not None and fee_left:
        drafts.append(fee_share(payment, fee_left))
    own = payment.amount_refunded_minor if refunded_minor is None else refunded_minor
    drafts.append(refund(payment, own))
    return drafts


def reversed_minor(payment: Payment) -> int:
    """How much of the runner's transfer came back before any revert."""
    return payment.transfer_reversed_minor or 0


def fee_refunded_minor(payment: Payment) -> int:
    """How much of the platform's fee refunds gave back before any revert."""
    return payment.fee_refunded_minor or 0


def opening(payment: Payment) -> list[Draft]:
    """Everything a payment recorded before the ledger existed has moved so far.

    Paths that ended where they began (declined; canceled before capture)
    moved nothing in the end and get no entries.
    """
    if payment.payment_status not in (S.AUTHORIZED, S.SUCCEEDED) and not payment.captured:
        return []
    drafts = [hold(payment)]
    if payment.captured:
        drafts.append(capture(payment))
        if payment.transfer_id is not None:
            drafts.append(transfer(payment))
        if payment.payment_status is S.REVERTED:
            drafts += revert(payment)
    return drafts
