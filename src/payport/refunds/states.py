"""Refund statuses and the only moves allowed between them."""

from __future__ import annotations

from enum import StrEnum

from payport.errors import InvalidStatus


class RefundStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"  # above REFUND_APPROVAL_THRESHOLD
    APPROVED = "approved"  # waiting to be processed
    PROCESSING = "processing"  # sent to the provider; processing again resumes it
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"


R = RefundStatus

REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    R.PENDING_APPROVAL: frozenset({R.APPROVED, R.REJECTED}),
    R.APPROVED: frozenset({R.PROCESSING}),
    R.PROCESSING: frozenset({R.SUCCEEDED, R.FAILED}),
    R.SUCCEEDED: frozenset(),
    R.FAILED: frozenset(),
    R.REJECTED: frozenset(),
}

# Refunds that hold part of the captured amount: the total of these never exceeds it.
RESERVING = frozenset({R.PENDING_APPROVAL, R.APPROVED, R.PROCESSING, R.SUCCEEDED})


def check_refund_move(current: RefundStatus, target: RefundStatus) -> RefundStatus:
    if target not in REFUND_TRANSITIONS[current]:
        raise InvalidStatus(
            f"refund cannot move from {current.value} to {target.value}", field="status"
        )
    return target
