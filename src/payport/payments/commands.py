"""What every command handler shares: the context, the inbox lookup, rejection."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from payport.config import Settings
from payport.db import Database
from payport.errors import PayportError
from payport.messaging.envelope import Envelope, Event, target_of
from payport.messaging.models import InboxEntry
from payport.messaging.outbox import replay_event
from payport.payments import events, repository, service
from payport.payments.models import Payment
from payport.payments.states import PaymentStatus
from payport.providers import base

log = logging.getLogger(__name__)
S = PaymentStatus


@dataclass(slots=True)
class PaymentsContext:
    """What handlers need: the database, the provider, settings, and a commit hook."""

    db: Database
    provider: base.PaymentProvider
    settings: Settings
    on_commit: Callable[[], None] = field(default=lambda: None)
    # Coalescers by name, created on first use (see payport.coalesce).
    batches: dict[str, Any] = field(default_factory=dict)
    # Payments whose authorize call this process is making now: their provider events can
    # wait, because the call's own answer is about to settle them (see webhooks/service.py).
    authorizing: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Outcome:
    """What a command produced: its outcome event (None while 3-D Secure is pending)."""

    event: Event | None
    payment_id: str | None


async def start(
    session: AsyncSession, envelope: Envelope, source_ref: str | None
) -> tuple[str, InboxEntry | None, Outcome | None]:
    """Find this command in the inbox; a finished one is answered from the record."""
    target = target_of(envelope) or "-"
    entry = await repository.get_inbox_entry(session, inbox_key(envelope))
    return target, entry, answered_from_record(session, entry, source_ref)


def open_entry(
    session: AsyncSession,
    envelope: Envelope,
    source_ref: str | None,
    *,
    payment_id: str | None,
    status: str = "processing",
) -> InboxEntry:
    """Record a new distinct command (its outcome is filled in by `service.answer`)."""
    entry = new_entry(envelope, source_ref, payment_id=payment_id, status=status)
    session.add(entry)
    return entry


def new_entry(
    envelope: Envelope, source_ref: str | None, *, payment_id: str | None, status: str
) -> InboxEntry:
    """An inbox entry not yet in any session (a batch may insert many in one statement)."""
    return InboxEntry(
        command_key=inbox_key(envelope),
        command_type=envelope.type,
        target=target_of(envelope) or "-",
        correlation_id=envelope.correlation_id,
        payment_id=payment_id,
        status=status,
        source_ref=source_ref,
    )


def inbox_key(envelope: Envelope) -> str:
    return service.command_key(envelope.type, target_of(envelope) or "-", envelope.correlation_id)


def answered_from_record(
    session: AsyncSession, entry: InboxEntry | None, source_ref: str | None
) -> Outcome | None:
    """A finished command's outcome; re-published only for a re-sent copy of the command."""
    if entry is None or entry.status != "done":
        return None
    event = None
    if entry.outcome is not None and entry.source_ref != source_ref:
        event = replay_event(session, entry.outcome)
    return Outcome(event, entry.payment_id)


def reject(
    session: AsyncSession,
    envelope: Envelope,
    target: str,
    source_ref: str | None,
    error: PayportError,
    *,
    payment: Payment | None = None,
    entry: InboxEntry | None = None,
) -> Outcome:
    """Record a command that cannot proceed and publish its payment.failed."""
    if entry is None:
        entry = open_entry(
            session, envelope, source_ref, payment_id=payment.id if payment else None
        )
    named = target if target != "-" else None
    is_authorize = envelope.type == "authorize_payment"
    payload = events.failed(error, payment=payment, order_id=named if is_authorize else None)
    if payment is None and named and not is_authorize:
        payload["payment_id"] = named  # the id the command named, though nothing has it
    return Outcome(service.answer(session, entry, events.FAILED, payload), entry.payment_id)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The fields a provider phase needs, read inside the first transaction."""

    id: str
    order_id: str
    intent_id: str | None
    charge_id: str | None
    currency: str
    amount_captured_minor: int
    runner_account_id: str | None
    transfer_id: str | None
    status: PaymentStatus
    revert_reason: str | None


def snapshot(payment: Payment) -> Snapshot:
    return Snapshot(
        id=payment.id,
        order_id=payment.order_id,
        intent_id=payment.payment_intent_id,
        charge_id=payment.charge_id,
        currency=payment.currency,
        amount_captured_minor=payment.amount_captured_minor,
        runner_account_id=payment.runner_account_id,
        transfer_id=payment.transfer_id,
        status=payment.payment_status,
        revert_reason=payment.revert_reason,
    )


def recorded_event(entry: InboxEntry | None) -> Event | None:
    """The outcome event recorded for a command, if it has one yet."""
    if entry is None or entry.outcome is None:
        return None
    body = orjson.loads(entry.outcome)
    return Event(event_id=body["event_id"], type=body["type"], key=None, body=body)
