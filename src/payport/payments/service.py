"""Decisions about payments, inside the caller's transaction (services never commit).

Every state change goes through `_move`, which checks the transition table,
and every outcome leaves as an outbox event written in the same transaction.
Every change that moves money posts its ledger entry in that transaction too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from payport.errors import CardError, PaymentCanceled, PaymentReverted, PayportError
from payport.ids import new_uuid
from payport.ledger import payment_entries as entries
from payport.ledger import service as ledger
from payport.ledger.drafts import Draft
from payport.messaging.envelope import Event
from payport.messaging.models import InboxEntry
from payport.messaging.outbox import emit
from payport.money import Money
from payport.payments import events, repository
from payport.payments.models import Payment
from payport.payments.schemas import AuthorizeCommand
from payport.payments.states import PaymentStatus, can_transition, check_transition
from payport.providers import base

S = PaymentStatus


def command_key(kind: str, target: str, correlation_id: str) -> str:
    """A distinct command is its type, its order or payment, and its correlation id."""
    return f"{kind}:{target}:{correlation_id}"


def answer(
    session: AsyncSession, entry: InboxEntry, event_type: str, payload: dict[str, Any]
) -> Event:
    """Publish the one outcome of a command and record it for replays."""
    event = emit(
        session,
        event_type,
        payload,
        correlation_id=entry.correlation_id,
        key=payload.get("order_id") or entry.target,
    )
    entry.status = "done"
    entry.outcome_event_id = event.event_id
    entry.outcome = orjson.dumps(event.body).decode()
    return event


def create_payment(
    session: AsyncSession, command: AuthorizeCommand, correlation_id: str
) -> Payment:
    payment = new_payment(command, correlation_id)
    session.add(payment)
    return payment


def new_payment(command: AuthorizeCommand, correlation_id: str) -> Payment:
    """A payment for `command`, not yet in any session (INITIATING, nothing moved)."""
    return Payment(
        id=new_uuid(),
        order_id=command.order_id,
        customer_user_id=command.customer_user_id,
        provider_customer_id=command.provider_customer_id,
        payment_method_id=command.payment_method_id,
        amount_minor=command.amount.amount_minor,
        currency=command.amount.currency,
        description=command.description,
        return_url=command.return_url,
        status=S.INITIATING.value,
        correlation_id=correlation_id,
        amount_captured_minor=0,
        fee_minor=0,
        transfer_amount_minor=0,
        amount_refunded_minor=0,
        disputed=False,
    )


def _move(payment: Payment, target: PaymentStatus) -> None:
    payment.status = check_transition(payment.payment_status, target).value


async def _answer_authorize(
    session: AsyncSession,
    payment: Payment,
    event_type: str,
    payload: dict[str, Any],
    waiting: Sequence[InboxEntry] | None,
) -> list[Event]:
    """Settle every authorize command waiting on this payment; announce it once if none.

    `waiting` may be preloaded by a caller that settles many payments at once.
    """
    if waiting is None:
        waiting = await repository.waiting_entries(session, payment.id)
    if waiting:
        return [answer(session, entry, event_type, payload) for entry in waiting]
    return [
        emit(
            session,
            event_type,
            payload,
            correlation_id=payment.correlation_id or payment.id,
            key=payment.order_id,
        )
    ]


def outcome_for_settled(payment: Payment) -> tuple[str, dict[str, Any]] | None:
    """What a new authorize command for an already-settled payment is told."""
    status = payment.payment_status
    if status in (S.INITIATING, S.REQUIRES_ACTION):
        return None
    if status is S.FAILED:
        error = PayportError(
            payment.failure_message or "payment failed",
            code=payment.failure_code or "PROCESSING_ERROR",
        )
        return events.FAILED, events.failed(error, payment=payment)
    return events.AUTHORIZED, events.authorized(payment)


def status_for_intent_status(intent_status: str) -> PaymentStatus | None:
    """The payment status a PaymentIntent status stands for (None: no opinion)."""
    if intent_status in (base.PI_REQUIRES_CAPTURE, base.PI_SUCCEEDED):
        return S.AUTHORIZED
    if intent_status == base.PI_REQUIRES_ACTION:
        return S.REQUIRES_ACTION
    if intent_status in (base.PI_REQUIRES_PAYMENT_METHOD, base.PI_CANCELED):
        return S.FAILED
    return None


def intent_could_change(current: PaymentStatus, intent_status: str, *, reverting: bool) -> bool:
    """Whether an intent in `intent_status` could move a payment now in `current`."""
    if reverting and intent_status == base.PI_CANCELED:
        return current in (S.AUTHORIZED, S.REQUIRES_ACTION)
    target = status_for_intent_status(intent_status)
    return target is not None and target is not current and can_transition(current, target)


def _intent_failure(intent: base.IntentView) -> PayportError:
    if intent.status == base.PI_CANCELED:
        return PaymentCanceled(
            f"payment intent was canceled ({intent.cancellation_reason or 'unknown reason'})"
        )
    return CardError(
        intent.last_error_message or "the card could not be authorized",
        stripe_code=intent.last_error_code,
        decline_code=intent.last_decline_code,
    )


def _cancel_completes_revert(payment: Payment, intent: base.IntentView) -> bool:
    """A cancel we asked for (revert under way) reverts; any other cancel fails the payment."""
    return (
        payment.revert_reason is not None
        and payment.payment_status in (S.AUTHORIZED, S.REQUIRES_ACTION)
        and intent.status == base.PI_CANCELED
    )


async def apply_intent(
    session: AsyncSession,
    payment: Payment,
    intent: base.IntentView,
    *,
    waiting: Sequence[InboxEntry] | None = None,
) -> list[Event]:
    """Bring a payment in line with its PaymentIntent as the provider reports it now.

    Used after authorize, for webhooks and by reconciliation; a stale or
    out-of-order view never moves a payment backwards.
    """
    if payment.payment_intent_id is None:
        payment.payment_intent_id = intent.id
    if intent.latest_charge:
        payment.charge_id = intent.latest_charge
    target = status_for_intent_status(intent.status)
    current = payment.payment_status
    if target is None or target is current:
        return []
    if _cancel_completes_revert(payment, intent):
        return await complete_revert(session, payment)
    if not can_transition(current, target):
        return []
    if target is S.REQUIRES_ACTION:
        _move(payment, target)
        payment.next_action_url = intent.next_action_url
        return []
    if target is S.AUTHORIZED:
        _move(payment, target)
        payment.next_action_url = None
        ledger.post(session, entries.hold(payment))
        return await _answer_authorize(
            session, payment, events.AUTHORIZED, events.authorized(payment), waiting
        )
    return await fail_payment(session, payment, _intent_failure(intent), waiting=waiting)


async def fail_payment(
    session: AsyncSession,
    payment: Payment,
    error: PayportError,
    *,
    waiting: Sequence[InboxEntry] | None = None,
) -> list[Event]:
    """An authorization that ended without money held: FAILED, and every waiter told.

    A hold that existed (the provider canceled an AUTHORIZED intent) is released.
    """
    held = payment.payment_status is S.AUTHORIZED and not payment.captured
    _move(payment, S.FAILED)
    if held:
        ledger.post(session, entries.cancel(payment))
    payment.failure_code = error.code
    payment.failure_message = error.message
    return await _answer_authorize(
        session, payment, events.FAILED, events.failed(error, payment=payment), waiting
    )


def record_capture(payment: Payment, intent: base.IntentView) -> None:
    """The provider captured: the money moved even if the release then fails at the transfer.

    Posted here rather than in `complete_capture` for that reason; a capture
    recorded again (a retried release) posts nothing twice (same cause).
    """
    payment.amount_captured_minor = intent.amount_received
    if intent.latest_charge:
        payment.charge_id = intent.latest_charge
    if payment.captured:
        ledger.post_with(payment, entries.capture(payment))


def complete_capture(payment: Payment) -> None:
    """Captured: SUCCEEDED, and any failure of an earlier attempt cleared."""
    _move(payment, S.SUCCEEDED)
    payment.failure_code = None
    payment.failure_message = None


def complete_release(payment: Payment, transfer: base.TransferView, *, fee_minor: int) -> None:
    """Captured, and the runner's share transferred; the platform keeps `fee_minor`."""
    complete_capture(payment)
    payment.transfer_id = transfer.id
    payment.transfer_amount_minor = transfer.amount_minor
    payment.fee_minor = fee_minor
    ledger.post_with(payment, entries.transfer(payment))


async def complete_revert(
    session: AsyncSession, payment: Payment, *, refunded_minor: int = 0
) -> list[Event]:
    """REVERTED; authorize commands still waiting (3-D Secure) learn it failed.

    The money goes back as the provider moved it: a hold is released; a capture
    is refunded (`refunded_minor`, payport's own refund) after the runner's
    transfer (and the platform's fee) came back. The stored refund total adds
    payport's refund to any made outside it before, as the provider counts it.
    """
    was_pending = payment.payment_status is S.REQUIRES_ACTION
    returned = entries.revert(payment, refunded_minor=refunded_minor)
    payment.amount_refunded_minor += refunded_minor
    _move(payment, S.REVERTED)
    ledger.post(session, *returned)
    if was_pending:
        error = PaymentReverted("payment was reverted before authentication completed")
        waiting = await repository.waiting_entries(session, payment.id)
        return [
            answer(session, entry, events.FAILED, events.failed(error, payment=payment))
            for entry in waiting
        ]
    return []


# --- money moved outside payport (dashboard, bank) ------------------------------------------


def _outside(draft: Draft, total_minor: int) -> Draft:
    """A movement payport did not make, keyed by the provider's running total: a replayed
    or late event with the same or a smaller total posts nothing."""
    return dataclasses.replace(draft, cause=f"{draft.cause}:outside:{total_minor}")


def record_outside_refund(
    session: AsyncSession, payment: Payment, *, refunded_total_minor: int
) -> bool:
    """A refund someone else made on the captured charge: remember it and post the difference.

    Totals only grow, so taking the larger one makes the order of events irrelevant.
    """
    added = refunded_total_minor - payment.amount_refunded_minor
    if added <= 0 or not payment.captured:
        return False
    payment.amount_refunded_minor = refunded_total_minor
    refund = ledger.refund(
        payment_id=payment.id,
        customer=payment.customer_user_id,
        amount=Money(added, payment.currency),
        completes=refunded_total_minor >= payment.amount_captured_minor,
    )
    ledger.post(session, _outside(refund, refunded_total_minor))
    return True


def record_outside_reversal(
    session: AsyncSession, payment: Payment, *, reversed_total_minor: int
) -> bool:
    """Part of the runner's transfer taken back by someone else: remember it, post the rest."""
    known = payment.transfer_reversed_minor or 0
    added = reversed_total_minor - known
    if added <= 0 or payment.transfer_id is None:
        return False
    payment.transfer_reversed_minor = reversed_total_minor
    reversal = ledger.reverse_transfer(
        payment_id=payment.id,
        runner=payment.runner_id or "",
        amount=Money(added, payment.currency),
        completes=reversed_total_minor >= payment.transfer_amount_minor,
    )
    ledger.post(session, _outside(reversal, reversed_total_minor))
    return True


@dataclass(frozen=True, slots=True)
class DisputeFacts:
    """What a `charge.dispute.*` event says about the dispute."""

    id: str
    amount_minor: int
    reason: str | None
    status: str | None


def flag_dispute(session: AsyncSession, payment: Payment, dispute: DisputeFacts) -> list[Event]:
    """Flag the payment and announce the dispute, once per dispute id.

    A dispute is a flag, not a status: the payment keeps moving as before, and
    no money moves until the bank withdraws it (a later event).
    """
    if payment.dispute_id == dispute.id:
        return []
    payment.disputed = True
    payment.dispute_id = dispute.id
    payload = events.disputed(
        payment,
        amount_minor=dispute.amount_minor,
        reason=dispute.reason,
        dispute_status=dispute.status,
    )
    return [
        emit(
            session,
            events.DISPUTED,
            payload,
            correlation_id=payment.correlation_id or payment.id,
            key=payment.order_id,
        )
    ]
