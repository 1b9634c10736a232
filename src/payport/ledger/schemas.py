"""What the ledger routes answer: integer minor units, snake_case, Stripe-like lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from payport.ledger.models import LedgerEntry, LedgerPosting
from payport.ledger.repository import Balance
from payport.payments.views import iso_utc


class BalanceAmount(BaseModel):
    currency: str
    amount: int = Field(description="Signed minor units: positive is money held by the account.")
    payment_count: int = Field(description="Payments whose money makes up this balance.")


class AccountBalance(BaseModel):
    object: Literal["balance"] = "balance"
    account: str
    balances: list[BalanceAmount]


class Posting(BaseModel):
    account: str
    currency: str
    amount: int = Field(description="Signed minor units: positive flows into the account.")
    payment_count: int


class Entry(BaseModel):
    id: int
    object: Literal["ledger_entry"] = "ledger_entry"
    cause: str = Field(description="What posted it, e.g. `capture:{payment_id}`; unique.")
    kind: str
    payment_id: str | None
    created_at: str
    postings: list[Posting]


class EntryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Entry]
    has_more: bool
    url: str = "/api/v1/ledger/entries"


def account_balance(account: str, rows: Sequence[Balance]) -> AccountBalance:
    return AccountBalance(
        account=account,
        balances=[
            BalanceAmount(
                currency=row.money.currency,
                amount=row.money.amount_minor,
                payment_count=row.payment_count,
            )
            for row in rows
        ],
    )


def entry(row: LedgerEntry, postings: Sequence[LedgerPosting]) -> Entry:
    return Entry(
        id=row.id,
        cause=row.cause,
        kind=row.kind,
        payment_id=row.payment_id,
        created_at=iso_utc(row.created_at),
        postings=[
            Posting(
                account=p.account,
                currency=p.currency,
                amount=p.amount_minor,
                payment_count=p.payment_count,
            )
            for p in postings
        ],
    )
