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


def revert(payment: Payment, *, refunded_minor: int | None = None) -> list[Draft]:
    """What a revert moves, asked before the move: nothing before authorization, the hold,
    or the captured money (the runner's transfer and the platform's fee come back first).

    `refunded_minor` is what the revert's own refund returned; without it (opening
    entries, written before outside refunds were recorded) the stored total."""
    if not payment.captured:
        return [cancel(payment)] if payment.payment_status is S.AUTHORIZED else []
    currency = payment.currency
    drafts: list[Draft] = []
    if payment.transfer_reversal_id is not None:
        # payport reverses what is left; a part reversed outside it was posted when seen.
        left = payment.transfer_amount_minor - (payment.transfer_reversed_minor or 0)
        amount = Money(left, currency)
        drafts.append(
            rules.reverse_transfer(
                payment_id=payment.id, runner=payment.runner_id or "", amount=amount
            )
        )
    if payment.transfer_id is not None and payment.fee_minor:
        drafts.append(
            rules.fee_refund(payment_id=payment.id, fee=Money(payment.fee_minor, currency))
        )
    own = payment.amount_refunded_minor if refunded_minor is None else refunded_minor
    refunded = Money(own, currency)
    drafts.append(
        rules.refund(payment_id=payment.id, customer=payment.customer_user_id, amount=refunded)
    )
    return drafts


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
