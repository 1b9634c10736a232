"""The ledger's tables: journal entries, their postings, and balances kept beside them.

Entries and postings are append-only: nothing updates or deletes them, a
correction is a new entry. An entry is unique by its cause (`capture:{payment_id}`,
the same key the provider call carried), so a transition applied twice cannot
post twice. Amounts are signed integers in minor units: positive flows into
the account, negative out of it, and each entry's postings sum to zero.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from payport.db import Base, BigIntPK, UTCDateTime, utcnow


class LedgerEntry(Base):
    """One money movement, named by what caused it."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    cause: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    payment_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_ledger_entries_payment_id", "payment_id"),)


class LedgerPosting(Base):
    """One line of an entry: money into (positive) or out of (negative) one account.

    `payment_count` moves the number of payments an account's balance is made
    of (+1 when a payment's money arrives for good, -1 when it goes back), so
    "how many payments did this user pay for" is a balance read too.
    """

    __tablename__ = "ledger_postings"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_entries.id"))
    account: Mapped[str] = mapped_column(String(300))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    payment_count: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_ledger_postings_account_entry", "account", "entry_id"),
        Index("ix_ledger_postings_entry_id", "entry_id"),
    )


class LedgerBalance(Base):
    """The running sum of an account's postings, per currency, spread over bucket rows.

    Written in the transaction of the postings it sums, so it is never behind;
    a balance is the sum of an account's few bucket rows.
    """

    __tablename__ = "ledger_balances"

    account: Mapped[str] = mapped_column(String(300), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    payment_count: Mapped[int] = mapped_column(BigInteger, default=0)
