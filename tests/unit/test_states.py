"""The transition table, checked for every (from, to) pair."""

import itertools

import pytest

from payport.errors import InvalidStatus
from payport.payments.states import (
    FINAL_STATUSES,
    TRANSITIONS,
    PaymentStatus,
    can_transition,
    check_transition,
)

S = PaymentStatus
ALLOWED = {
    (S.INITIATING, S.REQUIRES_ACTION),
    (S.INITIATING, S.AUTHORIZED),
    (S.INITIATING, S.FAILED),
    (S.REQUIRES_ACTION, S.AUTHORIZED),
    (S.REQUIRES_ACTION, S.FAILED),
    (S.REQUIRES_ACTION, S.REVERTED),
    (S.AUTHORIZED, S.SUCCEEDED),
    (S.AUTHORIZED, S.FAILED),
    (S.AUTHORIZED, S.REVERTED),
    (S.SUCCEEDED, S.REVERTED),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_transition_pair(current: PaymentStatus, target: PaymentStatus) -> None:
    allowed = (current, target) in ALLOWED
    assert can_transition(current, target) is allowed
    if allowed:
        assert check_transition(current, target) is target
    else:
        with pytest.raises(InvalidStatus) as caught:
            check_transition(current, target)
        assert current.value in caught.value.message and target.value in caught.value.message


def test_failed_and_reverted_are_final() -> None:
    assert {S.FAILED, S.REVERTED} == FINAL_STATUSES


def test_no_status_can_move_back_to_initiating() -> None:
    assert all(S.INITIATING not in targets for targets in TRANSITIONS.values())
