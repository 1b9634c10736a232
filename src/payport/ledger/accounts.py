"""Ledger accounts: named by a code (`customer:user_alice`, `escrow:{payment_id}`, `platform_fees`).

Accounts are not registered anywhere: an account exists once something has
been posted to it. Shared accounts (every payment touches them) keep their
balance in several bucket rows, so concurrent transactions on PostgreSQL
lock different rows instead of queueing on one; a balance read adds up a
handful of rows found by one primary-key range.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import Enum, StrEnum

from payport.errors import InvalidPayload


class Scope(Enum):
    """Who an account belongs to, which decides how many balance rows it spreads over."""

    PAYMENT = 1  # one payment's money: only that payment's transactions touch it
    OWNER = 4  # one customer or runner: busy ones get a few rows
    SHARED = 16  # the platform's own: every payment touches it

    @property
    def buckets(self) -> int:
        return self.value


class AccountKind(StrEnum):
    CUSTOMER = "customer"  # customer funding: goes negative by what the customer has paid
    HOLD = "hold"  # an authorized, uncaptured hold on the customer's card
    ESCROW = "escrow"  # captured money held for a payment until transferred or refunded
    RUNNER = "runner"  # runner payable: what has been transferred to a runner
    PLATFORM_FEES = "platform_fees"  # fees the platform kept on releases
    REFUNDS = "refunds"  # fees the platform gave back when a released payment was refunded
    BILLING_REVENUE = "billing_revenue"  # subscription charges collected on paid invoices
    PRORATION_CREDITS = "proration_credits"  # unused time credited back on plan changes
    CUSTOMER_CREDIT = "customer_credit"  # a customer's billing balance (positive: owed to them)


_SCOPES = {
    AccountKind.CUSTOMER: Scope.OWNER,
    AccountKind.HOLD: Scope.PAYMENT,
    AccountKind.ESCROW: Scope.PAYMENT,
    AccountKind.RUNNER: Scope.OWNER,
    AccountKind.PLATFORM_FEES: Scope.SHARED,
    AccountKind.REFUNDS: Scope.SHARED,
    AccountKind.BILLING_REVENUE: Scope.SHARED,
    AccountKind.PRORATION_CREDITS: Scope.SHARED,
    AccountKind.CUSTOMER_CREDIT: Scope.OWNER,
}


@dataclass(frozen=True, slots=True, order=True)
class Account:
    kind: AccountKind
    key: str = ""

    @property
    def code(self) -> str:
        return f"{self.kind.value}:{self.key}" if self.key else self.kind.value

    @property
    def buckets(self) -> int:
        """Shared accounts spread over many rows; a customer without a user id is shared."""
        return _SCOPES[self.kind].buckets if self.key else Scope.SHARED.buckets

    def bucket(self, spread_by: str) -> int:
        """The balance row a posting lands in: stable per payment, spread across payments."""
        if self.buckets == 1:
            return 0
        return zlib.crc32(spread_by.encode()) % self.buckets

    @classmethod
    def parse(cls, code: str) -> Account:
        """An account from its code, or InvalidPayload naming the `account` field."""
        kind_text, _, key = code.partition(":")
        try:
            kind = AccountKind(kind_text)
        except ValueError:
            known = ", ".join(kind.value for kind in AccountKind)
            raise InvalidPayload(
                f"unknown account kind {kind_text!r} (known: {known})", field="account"
            ) from None
        scope = _SCOPES[kind]
        if scope is Scope.SHARED and key:
            raise InvalidPayload(f"`{kind.value}` takes no key", field="account")
        if scope is Scope.PAYMENT and not key:
            raise InvalidPayload(f"`{kind.value}` needs a payment id", field="account")
        return cls(kind, key)


def customer(user_id: str | None) -> Account:
    """Customer funding; payments without a user id share one anonymous account."""
    return Account(AccountKind.CUSTOMER, user_id or "")


def hold(payment_id: str) -> Account:
    return Account(AccountKind.HOLD, payment_id)


def escrow(payment_id: str) -> Account:
    return Account(AccountKind.ESCROW, payment_id)


def runner(runner_id: str) -> Account:
    return Account(AccountKind.RUNNER, runner_id)


PLATFORM_FEES = Account(AccountKind.PLATFORM_FEES)
REFUNDS = Account(AccountKind.REFUNDS)
BILLING_REVENUE = Account(AccountKind.BILLING_REVENUE)
PRORATION_CREDITS = Account(AccountKind.PRORATION_CREDITS)


def customer_credit(user_id: str) -> Account:
    return Account(AccountKind.CUSTOMER_CREDIT, user_id)
