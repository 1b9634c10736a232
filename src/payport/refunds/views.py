"""What the refunds API answers and its events carry."""

from __future__ import annotations

from typing import Any

from payport.billing.views import iso
from payport.money import major_json_number
from payport.refunds.models import Refund


def refund_view(refund: Refund) -> dict[str, Any]:
    return {
        "object": "refund",
        "refund_id": refund.id,
        "payment_id": refund.payment_id,
        "amount": major_json_number(refund.amount_minor, refund.currency),
        "amount_minor": refund.amount_minor,
        "currency": refund.currency,
        "status": refund.status,
        "reason": refund.reason,
        "provider_reason": refund.provider_reason,
        "provider_refund_id": refund.provider_refund_id,
        "transfer_reversal_id": refund.transfer_reversal_id,
        "transfer_reversal_minor": refund.transfer_reversal_minor or 0,
        "fee_refund_minor": refund.fee_refund_minor or 0,
        "requested_by": refund.requested_by,
        "approved_by": refund.approved_by,
        "approved_at": iso(refund.approved_at),
        "rejection_reason": refund.rejection_reason,
        "failure_code": refund.failure_code,
        "failure_message": refund.failure_message,
        "processed_at": iso(refund.processed_at),
        "created_at": iso(refund.created_at),
    }
