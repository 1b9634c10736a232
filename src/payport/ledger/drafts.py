"""A journal entry before it is written: balanced lines in one currency, named by its cause."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from payport.ledger.accounts import Account


class EntryKind(StrEnum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    CANCEL = "cancel"
    TRANSFER = "transfer"
    REVERSE_TRANSFER = "reverse_transfer"
    FEE_REFUND = "fee_refund"
    REFUND = "refund"
    INVOICE = "invoice"
    # An invoice the customer paid outside payport: the same lines, no provider money behind them.
    INVOICE_OUT_OF_BAND = "invoice_out_of_band"


class UnbalancedEntry(ValueError):
    """A draft whose postings do not sum to zero: a bug in a posting rule, never posted."""


@dataclass(frozen=True, slots=True)
class Line:
    account: Account
    amount_minor: int
    payment_count: int = 0


@dataclass(frozen=True, slots=True)
class Draft:
    """An entry not yet written: its cause, its payment, and balanced lines in one currency."""

    cause: str
    kind: EntryKind
    payment_id: str | None
    currency: str
    lines: tuple[Line, ...]

    def __post_init__(self) -> None:
        if sum(line.amount_minor for line in self.lines) != 0:
            raise UnbalancedEntry(f"{self.cause}: postings sum to non-zero")
        if len({line.account for line in self.lines}) != len(self.lines):
            raise UnbalancedEntry(f"{self.cause}: an account appears twice")
