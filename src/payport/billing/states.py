"""Subscription and invoice statuses, and the only transitions allowed between them.

Like the payments table, a status changes only through `move_subscription` or
`move_invoice`, which check these tables; a late or repeated step cannot undo
a cancellation or un-pay an invoice.
"""

from __future__ import annotations

from enum import StrEnum

from payport.errors import InvalidStatus


class SubscriptionStatus(StrEnum):
    INCOMPLETE = "incomplete"  # created, first invoice not paid yet
    # The first invoice stayed unpaid for 23 hours (as on Stripe): its invoice is void.
    INCOMPLETE_EXPIRED = "incomplete_expired"
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"  # a renewal failed; dunning retries are scheduled
    UNPAID = "unpaid"  # retries exhausted, kept (BILLING_DUNNING_FINAL_ACTION=unpaid)
    CANCELED = "canceled"


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


Sub = SubscriptionStatus
Inv = InvoiceStatus

SUBSCRIPTION_TRANSITIONS: dict[SubscriptionStatus, frozenset[SubscriptionStatus]] = {
    Sub.INCOMPLETE: frozenset({Sub.ACTIVE, Sub.TRIALING, Sub.INCOMPLETE_EXPIRED, Sub.CANCELED}),
    Sub.INCOMPLETE_EXPIRED: frozenset(),
    Sub.TRIALING: frozenset({Sub.ACTIVE, Sub.PAST_DUE, Sub.CANCELED}),
    Sub.ACTIVE: frozenset({Sub.PAST_DUE, Sub.CANCELED}),
    Sub.PAST_DUE: frozenset({Sub.ACTIVE, Sub.UNPAID, Sub.CANCELED}),
    Sub.UNPAID: frozenset({Sub.ACTIVE, Sub.CANCELED}),
    Sub.CANCELED: frozenset(),
}

INVOICE_TRANSITIONS: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    Inv.DRAFT: frozenset({Inv.OPEN, Inv.VOID}),
    Inv.OPEN: frozenset({Inv.PAID, Inv.VOID, Inv.UNCOLLECTIBLE}),
    Inv.UNCOLLECTIBLE: frozenset({Inv.PAID, Inv.VOID}),
    Inv.PAID: frozenset(),
    Inv.VOID: frozenset(),
}

# How long a first invoice may stay unpaid before its subscription expires (Stripe: 23 h).
INCOMPLETE_EXPIRY_HOURS = 23

# Subscriptions that still renew at period end (and whose invoices are still retried).
RENEWING = frozenset({Sub.TRIALING, Sub.ACTIVE, Sub.PAST_DUE})


def can_move_subscription(current: SubscriptionStatus, target: SubscriptionStatus) -> bool:
    return target in SUBSCRIPTION_TRANSITIONS[current]


def check_subscription_move(
    current: SubscriptionStatus, target: SubscriptionStatus
) -> SubscriptionStatus:
    """`target` if allowed, else InvalidStatus naming both ends."""
    if not can_move_subscription(current, target):
        raise InvalidStatus(
            f"subscription cannot move from {current.value} to {target.value}", field="status"
        )
    return target


def can_move_invoice(current: InvoiceStatus, target: InvoiceStatus) -> bool:
    return target in INVOICE_TRANSITIONS[current]


def check_invoice_move(current: InvoiceStatus, target: InvoiceStatus) -> InvoiceStatus:
    if not can_move_invoice(current, target):
        raise InvalidStatus(
            f"invoice cannot move from {current.value} to {target.value}", field="status"
        )
    return target
