"""Opening entries for payments that existed before the ledger (run once, by migration 0002).

Each payment gets the entries the posting rules would have written along its
path so far, under the same causes, so later transitions continue it without
posting anything twice.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from payport.ledger import journal, payment_entries
from payport.ledger.drafts import Draft
from payport.payments.models import Payment

_BATCH = 1000
_COLUMNS = (
    "id",
    "status",
    "customer_user_id",
    "runner_id",
    "amount_minor",
    "currency",
    "amount_captured_minor",
    "transfer_id",
    "transfer_amount_minor",
    "fee_minor",
    "transfer_reversal_id",
    "amount_refunded_minor",
)


def post_opening_entries(session: Session) -> int:
    """Write every existing payment's entries; returns how many were written.

    Reads only the columns of revision 0001 and builds detached payments from
    them, so later columns cannot break this migration step.
    """
    query = select(*(Payment.__table__.c[name] for name in _COLUMNS)).order_by(Payment.id)
    written = 0
    batch: list[Draft] = []
    for row in session.execute(query).mappings():
        batch += payment_entries.opening(Payment(**row))
        if len(batch) >= _BATCH:
            written += journal.write(session, batch)
            batch = []
    return written + journal.write(session, batch)
