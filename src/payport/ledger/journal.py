"""Writes a transaction's drafts when it commits: entries, postings and balances in bulk.

Why at commit and not when posted:
- the payments transitions that move money include plain functions with no
  awaitable session (`record_capture`, `complete_release`); they hand their
  drafts to the session, and this hook writes them with everything else;
- a coalesced batch (authorize settles up to 256 payments per transaction)
  writes all its entries in three statements instead of three per payment;
- balance rows are upserted last, once per row and in one global order, so
  hot rows stay locked only for the final statements and the commit, and two
  transactions can never wait on each other's balance rows in a cycle.

An entry whose cause is already in the journal is skipped together with its
postings and balance changes: re-applying a transition posts nothing twice.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any, cast

from sqlalchemy import Table, event, insert
from sqlalchemy.orm import Session

from payport.db import dialect_insert, utcnow
from payport.ledger.drafts import Draft
from payport.ledger.models import LedgerBalance, LedgerEntry, LedgerPosting

log = logging.getLogger(__name__)

_PENDING = "payport.ledger.pending"

ENTRIES = cast(Table, LedgerEntry.__table__)
POSTINGS = cast(Table, LedgerPosting.__table__)
BALANCES = cast(Table, LedgerBalance.__table__)


def pending(session: Session) -> list[Draft]:
    """The drafts this session's transaction will write when it commits."""
    drafts: list[Draft] = session.info.setdefault(_PENDING, [])
    return drafts


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    drafts = session.info.pop(_PENDING, None)
    if drafts:
        session.flush()  # the transaction's own changes first: balance rows are locked last
        write(session, drafts)


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


def write(session: Session, drafts: Sequence[Draft]) -> int:
    """Write drafts whose cause is new; returns how many entries were written.

    Entries go in by payment (a payment's own in the order posted), so two
    transactions that race on the same causes wait in one order, never in a cycle.
    """
    unique = sorted(
        _first_per_cause(d for d in drafts if d.lines), key=lambda d: d.payment_id or ""
    )
    if not unique:
        return 0
    ids = _insert_entries(session, unique)
    written = [draft for draft in unique if draft.cause in ids]
    for draft in unique:
        if draft.cause not in ids:
            log.debug("ledger entry already posted cause=%s", draft.cause)
    if written:
        _insert_postings(session, written, ids)
        _apply_to_balances(session, written)
    return len(written)


def _first_per_cause(drafts: Iterator[Draft]) -> list[Draft]:
    seen: dict[str, Draft] = {}
    for draft in drafts:
        seen.setdefault(draft.cause, draft)
    return list(seen.values())


# Each statement is built once (per dialect, see `dialect_insert`) and executed with a
# list of rows (executemany), which SQLAlchemy batches into multi-row statements within
# each driver's limits.
_INSERT_POSTINGS = insert(POSTINGS)


@functools.cache
def _new_entries(dialect: str) -> Any:
    return (
        dialect_insert(dialect)(ENTRIES)
        .on_conflict_do_nothing(index_elements=["cause"])
        .returning(ENTRIES.c.id, ENTRIES.c.cause)
    )


@functools.cache
def _balance_changes(dialect: str) -> Any:
    statement = dialect_insert(dialect)(BALANCES)
    return statement.on_conflict_do_update(
        index_elements=["account", "currency", "bucket"],
        set_={
            "balance_minor": BALANCES.c.balance_minor + statement.excluded.balance_minor,
            "payment_count": BALANCES.c.payment_count + statement.excluded.payment_count,
        },
    )


def _insert_entries(session: Session, drafts: Sequence[Draft]) -> dict[str, int]:
    """Insert the entries not already there; their ids by cause."""
    now = utcnow()
    rows = [
        {"cause": d.cause, "kind": d.kind.value, "payment_id": d.payment_id, "created_at": now}
        for d in drafts
    ]
    statement = _new_entries(session.get_bind().dialect.name)
    return {cause: entry_id for entry_id, cause in session.execute(statement, rows)}


def _insert_postings(session: Session, drafts: Sequence[Draft], ids: dict[str, int]) -> None:
    rows = [
        {
            "entry_id": ids[draft.cause],
            "account": line.account.code,
            "currency": draft.currency,
            "amount_minor": line.amount_minor,
            "payment_count": line.payment_count,
        }
        for draft in drafts
        for line in draft.lines
    ]
    session.execute(_INSERT_POSTINGS, rows)


def _apply_to_balances(session: Session, drafts: Sequence[Draft]) -> None:
    """Add each draft's lines to its accounts' bucket rows, in one order for every writer."""
    deltas: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    for draft in drafts:
        spread_by = draft.payment_id or draft.cause
        for line in draft.lines:
            key = (line.account.code, draft.currency, line.account.bucket(spread_by))
            deltas[key][0] += line.amount_minor
            deltas[key][1] += line.payment_count
    rows = [
        {"account": a, "currency": c, "bucket": b, "balance_minor": amount, "payment_count": n}
        for (a, c, b), (amount, n) in sorted(deltas.items())
    ]
    session.execute(_balance_changes(session.get_bind().dialect.name), rows)
