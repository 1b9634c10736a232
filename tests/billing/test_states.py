"""Every pair of subscription and invoice statuses: allowed exactly when the table says so."""

from __future__ import annotations

import itertools

import pytest

from payport.billing.states import (
    InvoiceStatus,
    SubscriptionStatus,
    can_move_invoice,
    can_move_subscription,
    check_invoice_move,
    check_subscription_move,
)
from payport.errors import InvalidStatus

S = SubscriptionStatus
I = InvoiceStatus  # noqa: E741

# Written out here on purpose, not imported: the code must match this list.
ALLOWED_SUBSCRIPTION_MOVES = {
    (S.INCOMPLETE, S.ACTIVE),
    (S.INCOMPLETE, S.TRIALING),
    (S.INCOMPLETE, S.CANCELED),
    (S.INCOMPLETE, S.INCOMPLETE_EXPIRED),
    (S.TRIALING, S.ACTIVE),
    (S.TRIALING, S.PAST_DUE),
    (S.TRIALING, S.CANCELED),
    (S.ACTIVE, S.PAST_DUE),
    (S.ACTIVE, S.CANCELED),
    (S.PAST_DUE, S.ACTIVE),
    (S.PAST_DUE, S.UNPAID),
    (S.PAST_DUE, S.CANCELED),
    (S.UNPAID, S.ACTIVE),
    (S.UNPAID, S.CANCELED),
}
ALLOWED_INVOICE_MOVES = {
    (I.DRAFT, I.OPEN),
    (I.DRAFT, I.VOID),
    (I.OPEN, I.PAID),
    (I.OPEN, I.VOID),
    (I.OPEN, I.UNCOLLECTIBLE),
    (I.UNCOLLECTIBLE, I.PAID),
    (I.UNCOLLECTIBLE, I.VOID),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_subscription_transition_pair(current: S, target: S) -> None:
    allowed = (current, target) in ALLOWED_SUBSCRIPTION_MOVES
    assert can_move_subscription(current, target) is allowed
    if allowed:
        assert check_subscription_move(current, target) is target
    else:
        with pytest.raises(InvalidStatus) as raised:
            check_subscription_move(current, target)
        assert raised.value.field == "status"
        assert current.value in raised.value.message and target.value in raised.value.message


@pytest.mark.parametrize(("current", "target"), list(itertools.product(I, I)))
def test_invoice_transition_pair(current: I, target: I) -> None:
    allowed = (current, target) in ALLOWED_INVOICE_MOVES
    assert can_move_invoice(current, target) is allowed
    if not allowed:
        with pytest.raises(InvalidStatus):
            check_invoice_move(current, target)


def test_canceled_paid_and_void_are_final() -> None:
    assert not any(can_move_subscription(S.CANCELED, target) for target in S)
    assert not any(can_move_subscription(S.INCOMPLETE_EXPIRED, target) for target in S)
    assert not any(can_move_invoice(I.PAID, target) for target in I)
    assert not any(can_move_invoice(I.VOID, target) for target in I)
