"""Payment statuses and the only transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum

from payport.errors import InvalidStatus


class PaymentStatus(StrEnum):
    INITIATING = "INITIATING"
    REQUIRES_ACTION = "REQUIRES_ACTION"
    AUTHORIZED = "AUTHORIZED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REVERTED = "REVERTED"


S = PaymentStatus

TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    S.INITIATING: frozenset({S.REQUIRES_ACTION, S.AUTHORIZED, S.FAILED}),
    S.REQUIRES_ACTION: frozenset({S.AUTHORIZED, S.FAILED, S.REVERTED}),
    S.AUTHORIZED: frozenset({S.SUCCEEDED, S.FAILED, S.REVERTED}),
    S.SUCCEEDED: frozenset({S.REVERTED}),
    S.FAILED: frozenset(),
    S.REVERTED: frozenset(),
}

FINAL_STATUSES = frozenset(status for status, targets in TRANSITIONS.items() if not targets)


def can_transition(current: PaymentStatus, target: PaymentStatus) -> bool:
    return target in TRANSITIONS[current]


def check_transition(current: PaymentStatus, target: PaymentStatus) -> PaymentStatus:
    """Return `target` if the move is allowed, else raise InvalidStatus naming both ends."""
    if not can_transition(current, target):
        raise InvalidStatus(
            f"payment cannot move from {current.value} to {target.value}", field="status"
        )
    return target
