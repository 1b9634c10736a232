"""Command handlers: the edge that opens transactions around provider calls.

Each command runs as: a short transaction that records it in the inbox (or
answers a duplicate from the record), the provider call outside any
transaction with a key derived from the cause, and a short transaction that
applies the result and writes the outcome event. A crash anywhere repeats the
provider call with the same key, which the provider answers from its record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from payport.config import Settings
from payport.db import Database
from payport.errors import InvalidPayload, InvalidStatus, NotFound, PayportError
from payport.messaging.envelope import Envelope, Event, target_of
from payport.messaging.models import InboxEntry
from payport.messaging.outbox import replay_event
from payport.money import Money
from payport.payments import events, repository, service
from payport.payments.models import Payment
from payport.payments.schemas import parse_authorize, parse_release, parse_revert
from payport.payments.states import PaymentStatus
from payport.providers import base
from payport.providers.errors import to_payport_error, with_retries

log = logging.getLogger(__name__)
S = PaymentStatus


@dataclass(slots=True)
class PaymentsContext:
    """What handlers need: the database, the provider, settings, and a commit hook."""

    db: Database
    provider: base.PaymentProvider
    settings: Settings
    on_commit: Callable[[], None] = field(default=lambda: None)


@dataclass(slots=True)
class Outcome:
    """What a command produced: its outcome event (None while 3-D Secure is pending)."""

    event: Event | None
    payment_id: str | None


async def handle_command(
    ctx: PaymentsContext, envelope: Envelope, *, source_ref: str | None = None
) -> Outcome:
    handler = _HANDLERS[envelope.type]
    outcome = await handler(ctx, envelope, source_ref)
    ctx.on_commit()
    return outcome


async def _start(
    session: AsyncSession, envelope: Envelope, source_ref: str | None
) -> tuple[str, InboxEntry | None, Outcome | None]:
    """Find this command in the inbox; a finished one is answered from the record."""
    target = target_of(envelope) or "-"
    key = service.command_key(envelope.type, target, envelope.correlation_id)
    entry = await repository.get_inbox_entry(session, key)
    if entry is None or entry.status != "done":
        return target, entry, None
    event = None
    if entry.outcome is not None and entry.source_ref != source_ref:
        event = replay_event(session, entry.outcome)
    return target, entry, Outcome(event, entry.payment_id)


def _reject(
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
        entry = service.open_entry(
            session, kind=envelope.type, target=target, correlation_id=envelope.correlation_id,
            payment_id=payment.id if payment else None, status="processing",
        )  # fmt: skip
        entry.source_ref = source_ref
    order_id = target if envelope.type == "authorize_payment" and target != "-" else None
    payload = events.failed(error, payment=payment, order_id=order_id)
    return Outcome(service.answer(session, entry, events.FAILED, payload), entry.payment_id)


# --- authorize ---------------------------------------------------------------------------


async def authorize(ctx: PaymentsContext, envelope: Envelope, source_ref: str | None) -> Outcome:
    async with ctx.db.transaction() as session:
        target, entry, done = await _start(session, envelope, source_ref)
        if done is not None:
            return done
        if entry is not None:  # waiting: resume only an authorization cut short by a crash
            payment = await repository.get(session, entry.payment_id or "")
            if payment is None or payment.payment_status is not S.INITIATING:
                return Outcome(None, entry.payment_id)
        else:
            try:
                command = parse_authorize(envelope.payload, ctx.settings.default_currency)
            except PayportError as error:
                return _reject(session, envelope, target, source_ref, error)
            payment = await repository.get_by_order_id(session, command.order_id)
            if payment is None:
                payment = service.create_payment(session, command, envelope.correlation_id)
            entry = service.open_entry(
                session, kind=envelope.type, target=target,
                correlation_id=envelope.correlation_id, payment_id=payment.id, status="waiting",
            )  # fmt: skip
            entry.source_ref = source_ref
            settled = service.outcome_for_settled(payment)
            if settled is not None:
                return Outcome(service.answer(session, entry, *settled), payment.id)
            if payment.payment_status is not S.INITIATING:
                return Outcome(None, payment.id)
        request = _authorize_request(payment)
        payment_id = payment.id
    return await _authorize_with_provider(ctx, payment_id, request, entry.command_key)


def _authorize_request(payment: Payment) -> base.AuthorizeRequest:
    return base.AuthorizeRequest(
        amount=payment.money,
        payment_method=payment.payment_method_id or "",
        customer=payment.provider_customer_id,
        description=payment.description,
        return_url=payment.return_url,
        metadata={"payment_id": payment.id, "order_id": payment.order_id},
    )


async def _authorize_with_provider(
    ctx: PaymentsContext, payment_id: str, request: base.AuthorizeRequest, command_key: str
) -> Outcome:
    intent: base.IntentView | None = None
    error: PayportError | None = None
    try:
        intent = await with_retries(
            lambda: ctx.provider.create_payment_intent(
                request, idempotency_key=f"authorize:{payment_id}"
            )
        )
    except base.ProviderError as exc:
        intent, error = exc.payment_intent, to_payport_error(exc)
        log.info("authorize declined payment_id=%s code=%s", payment_id, error.code)
    async with ctx.db.transaction() as session:
        payment = await repository.get(session, payment_id, for_update=True)
        assert payment is not None
        if intent is not None:
            await service.apply_intent(session, payment, intent)
        if error is not None and payment.payment_status is S.INITIATING:
            await service.fail_payment(session, payment, error)
        entry = await repository.get_inbox_entry(session, command_key)
        outcome_event = _recorded_event(entry)
    return Outcome(outcome_event, payment_id)


def _recorded_event(entry: InboxEntry | None) -> Event | None:
    if entry is None or entry.outcome is None:
        return None
    body = orjson.loads(entry.outcome)
    return Event(event_id=body["event_id"], type=body["type"], key=None, body=body)


# --- release -----------------------------------------------------------------------------


async def release(ctx: PaymentsContext, envelope: Envelope, source_ref: str | None) -> Outcome:
    async with ctx.db.transaction() as session:
        target, entry, done = await _start(session, envelope, source_ref)
        if done is not None:
            return done
        try:
            command = parse_release(envelope.payload)
        except PayportError as error:
            return _reject(session, envelope, target, source_ref, error, entry=entry)
        payment = await repository.get(session, command.payment_id, for_update=True)
        problem = _release_problem(payment, command.runner_account_id, resuming=entry is not None)
        if problem is not None:
            return _reject(session, envelope, target, source_ref, problem, payment=payment,
                           entry=entry)  # fmt: skip
        assert payment is not None
        payment.runner_id = command.runner_id
        payment.runner_account_id = command.runner_account_id
        if entry is None:
            entry = service.open_entry(
                session, kind=envelope.type, target=target,
                correlation_id=envelope.correlation_id, payment_id=payment.id,
                status="processing",
            )  # fmt: skip
            entry.source_ref = source_ref
        snapshot = _snapshot(payment)
        command_key = entry.command_key
    return await _release_with_provider(ctx, snapshot, command_key)


def _release_problem(
    payment: Payment | None, account: str, *, resuming: bool
) -> PayportError | None:
    if payment is None:
        return NotFound("payment not found", field="payment_id")
    if payment.payment_status is not S.AUTHORIZED:
        return InvalidStatus(
            f"only an AUTHORIZED payment can be released; this one is {payment.status}",
            field="status",
        )
    if not resuming and payment.runner_account_id not in (None, account):
        return InvalidPayload(
            "a release to another connected account was already started for this payment",
            field="runner_connect_account_id",
        )
    return None


@dataclass(frozen=True, slots=True)
class _Snapshot:
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


def _snapshot(payment: Payment) -> _Snapshot:
    return _Snapshot(
        id=payment.id, order_id=payment.order_id, intent_id=payment.payment_intent_id,
        charge_id=payment.charge_id, currency=payment.currency,
        amount_captured_minor=payment.amount_captured_minor,
        runner_account_id=payment.runner_account_id, transfer_id=payment.transfer_id,
        status=payment.payment_status, revert_reason=payment.revert_reason,
    )  # fmt: skip


async def _capture(ctx: PaymentsContext, snap: _Snapshot) -> base.IntentView:
    """Capture the hold; an intent that is already captured counts as success."""
    try:
        return await with_retries(
            lambda: ctx.provider.capture_payment_intent(
                snap.intent_id or "", amount_minor=None, idempotency_key=f"capture:{snap.id}"
            )
        )
    except base.ProviderInvalidRequest as exc:
        if exc.payment_intent is not None and exc.payment_intent.status == base.PI_SUCCEEDED:
            return exc.payment_intent
        raise


async def _release_with_provider(
    ctx: PaymentsContext, snap: _Snapshot, command_key: str
) -> Outcome:
    captured: base.IntentView | None = None
    transfer: base.TransferView | None = None
    error: PayportError | None = None
    fee = 0
    try:
        captured = await _capture(ctx, snap)
        amount = Money(captured.amount_received, snap.currency)
        fee_money = amount.fee(ctx.settings.platform_fee_bps)
        fee = fee_money.amount_minor
        transfer = await with_retries(
            lambda: ctx.provider.create_transfer(
                amount=amount - fee_money, destination=snap.runner_account_id or "",
                transfer_group=snap.order_id, source_transaction=captured.latest_charge
                if captured else None, idempotency_key=f"transfer:{snap.id}",
                metadata={"payment_id": snap.id, "order_id": snap.order_id},
            )
        )  # fmt: skip
    except base.ProviderError as exc:
        error = to_payport_error(exc)
        log.warning("release failed payment_id=%s code=%s", snap.id, error.code)
    async with ctx.db.transaction() as session:
        payment = await repository.get(session, snap.id, for_update=True)
        entry = await repository.get_inbox_entry(session, command_key)
        assert payment is not None and entry is not None
        if captured is not None:
            service.record_capture(payment, captured)
        if transfer is not None and error is None:
            await service.complete_release(session, payment, transfer, fee_minor=fee)
            event = service.answer(session, entry, events.RELEASED, events.released(payment))
        else:
            assert error is not None
            payment.failure_code, payment.failure_message = error.code, error.message
            event = service.answer(session, entry, events.FAILED, events.failed(error, payment=payment))
    return Outcome(event, snap.id)


# --- revert ------------------------------------------------------------------------------


def cancellation_reason(reason: str | None) -> str:
    return reason if reason in base.CANCELLATION_REASONS else "requested_by_customer"


def refund_reason(reason: str | None) -> str:
    return reason if reason in base.REFUND_REASONS else "requested_by_customer"


async def revert(ctx: PaymentsContext, envelope: Envelope, source_ref: str | None) -> Outcome:
    async with ctx.db.transaction() as session:
        target, entry, done = await _start(session, envelope, source_ref)
        if done is not None:
            return done
        try:
            command = parse_revert(envelope.payload)
        except PayportError as error:
            return _reject(session, envelope, target, source_ref, error, entry=entry)
        payment = await repository.get(session, command.payment_id, for_update=True)
        if entry is not None and payment is not None and payment.payment_status is S.REVERTED:
            # A webhook finished this revert before a crash let us record it.
            return Outcome(service.answer(session, entry, events.REVERTED,
                                          events.reverted(payment)), payment.id)  # fmt: skip
        problem = _revert_problem(payment)
        if problem is not None:
            return _reject(session, envelope, target, source_ref, problem, payment=payment,
                           entry=entry)  # fmt: skip
        assert payment is not None
        needs_refund = payment.payment_status is S.SUCCEEDED or payment.captured
        payment.revert_reason = (
            refund_reason(command.reason) if needs_refund else cancellation_reason(command.reason)
        )
        if entry is None:
            entry = service.open_entry(
                session, kind=envelope.type, target=target,
                correlation_id=envelope.correlation_id, payment_id=payment.id,
                status="processing",
            )  # fmt: skip
            entry.source_ref = source_ref
        snapshot = _snapshot(payment)
        command_key = entry.command_key
    return await _revert_with_provider(ctx, snapshot, command_key, needs_refund=needs_refund)


def _revert_problem(payment: Payment | None) -> PayportError | None:
    if payment is None:
        return NotFound("payment not found", field="payment_id")
    if payment.payment_status in (S.INITIATING, S.FAILED, S.REVERTED):
        return InvalidStatus(
            f"a {payment.status} payment cannot be reverted", field="status"
        )
    return None


async def _undo_with_provider(
    ctx: PaymentsContext, snap: _Snapshot, *, needs_refund: bool
) -> dict[str, Any]:
    """Cancel an uncaptured hold, or reverse the runner's transfer and refund the capture."""
    reason = snap.revert_reason or "requested_by_customer"
    if not needs_refund:
        try:
            await with_retries(
                lambda: ctx.provider.cancel_payment_intent(
                    snap.intent_id or "", reason=reason, idempotency_key=f"cancel:{snap.id}"
                )
            )
        except base.ProviderInvalidRequest as exc:
            if exc.payment_intent is None or exc.payment_intent.status != base.PI_CANCELED:
                raise
        return {}
    result: dict[str, Any] = {}
    if snap.transfer_id:
        reversal = await with_retries(
            lambda: ctx.provider.create_transfer_reversal(
                snap.transfer_id or "", amount_minor=None,
                idempotency_key=f"reverse_transfer:{snap.id}",
            )
        )  # fmt: skip
        result["transfer_reversal_id"] = reversal.id
    refund = await with_retries(
        lambda: ctx.provider.create_refund(
            payment_intent=snap.intent_id or "", amount_minor=None, reason=reason,
            idempotency_key=f"refund:{snap.id}", metadata={"payment_id": snap.id},
        )
    )  # fmt: skip
    result["refund_id"] = refund.id
    result["amount_refunded_minor"] = refund.amount_minor
    return result


async def _revert_with_provider(
    ctx: PaymentsContext, snap: _Snapshot, command_key: str, *, needs_refund: bool
) -> Outcome:
    error: PayportError | None = None
    result: dict[str, Any] = {}
    try:
        result = await _undo_with_provider(ctx, snap, needs_refund=needs_refund)
    except base.ProviderError as exc:
        error = to_payport_error(exc)
        log.warning("revert failed payment_id=%s code=%s", snap.id, error.code)
    async with ctx.db.transaction() as session:
        payment = await repository.get(session, snap.id, for_update=True)
        entry = await repository.get_inbox_entry(session, command_key)
        assert payment is not None and entry is not None
        if error is not None:
            payment.revert_reason = None
            event = service.answer(session, entry, events.FAILED, events.failed(error, payment=payment))
            return Outcome(event, snap.id)
        payment.refund_id = result.get("refund_id", payment.refund_id)
        payment.transfer_reversal_id = result.get(
            "transfer_reversal_id", payment.transfer_reversal_id
        )
        payment.amount_refunded_minor = result.get(
            "amount_refunded_minor", payment.amount_refunded_minor
        )
        if payment.payment_status is not S.REVERTED:
            await service.complete_revert(session, payment)
        event = service.answer(session, entry, events.REVERTED, events.reverted(payment))
    return Outcome(event, snap.id)


_HANDLERS = {
    "authorize_payment": authorize,
    "release_payment": release,
    "revert_payment": revert,
}
