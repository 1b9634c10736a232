"""release_payment: capture the hold and transfer the runner's share."""

from __future__ import annotations

import logging

from payport.errors import InvalidPayload, InvalidStatus, NotFound, PayportError
from payport.messaging.envelope import Envelope
from payport.money import Money
from payport.payments import events, repository, service
from payport.payments.commands import (
    Outcome,
    PaymentsContext,
    Snapshot,
    open_entry,
    recorded_event,
    reject,
    snapshot,
    start,
)
from payport.payments.models import Payment
from payport.payments.schemas import parse_capture, parse_release
from payport.payments.states import PaymentStatus
from payport.providers import base
from payport.providers.errors import to_payport_error, with_retries

log = logging.getLogger(__name__)
S = PaymentStatus


async def release(ctx: PaymentsContext, envelope: Envelope, source_ref: str | None) -> Outcome:
    async with ctx.db.transaction() as session:
        target, entry, done = await start(session, envelope, source_ref)
        if done is not None:
            return done
        try:
            command = parse_release(envelope.payload)
        except PayportError as error:
            return reject(session, envelope, target, source_ref, error, entry=entry)
        payment = await repository.get(session, command.payment_id, for_update=True)
        problem = _release_problem(payment, command.runner_account_id, resuming=entry is not None)
        if problem is not None:
            return reject(
                session, envelope, target, source_ref, problem, payment=payment, entry=entry
            )
        assert payment is not None
        payment.runner_id = command.runner_id
        payment.runner_account_id = command.runner_account_id
        entry = entry or open_entry(session, envelope, source_ref, payment_id=payment.id)
        snap = snapshot(payment)
        command_key = entry.command_key
    return await resume_release(ctx, snap, command_key)


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


async def _capture(
    ctx: PaymentsContext, snap: Snapshot, amount_minor: int | None = None
) -> base.IntentView:
    """Capture the hold; an intent that is already captured counts as success."""
    try:
        return await with_retries(
            lambda: ctx.provider.capture_payment_intent(
                snap.intent_id or "",
                amount_minor=amount_minor,
                idempotency_key=f"capture:{snap.id}",
            )
        )
    except base.ProviderInvalidRequest as exc:
        if exc.payment_intent is not None and exc.payment_intent.status == base.PI_SUCCEEDED:
            return exc.payment_intent
        raise


async def resume_release(ctx: PaymentsContext, snap: Snapshot, command_key: str) -> Outcome:
    """Capture, then transfer, each keyed by its cause: also how reconcile finishes a
    release a crash left half done."""
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
                amount=amount - fee_money,
                destination=snap.runner_account_id or "",
                transfer_group=snap.order_id,
                source_transaction=captured.latest_charge if captured else None,
                idempotency_key=f"transfer:{snap.id}",
                metadata={"payment_id": snap.id, "order_id": snap.order_id},
            )
        )
    except base.ProviderError as exc:
        error = to_payport_error(exc)
        log.warning("release failed payment_id=%s code=%s", snap.id, error.code)
    async with ctx.db.transaction() as session:
        payment = await repository.get(session, snap.id, for_update=True)
        entry = await repository.get_inbox_entry(session, command_key)
        assert payment is not None and entry is not None
        if entry.status == "done":  # finished meanwhile: a redelivered copy or reconcile
            return Outcome(recorded_event(entry), snap.id)
        if captured is not None:
            service.record_capture(payment, captured)
        if transfer is not None and error is None:
            service.complete_release(payment, transfer, fee_minor=fee)
            event = service.answer(session, entry, events.RELEASED, events.released(payment))
        else:
            assert error is not None
            payment.failure_code, payment.failure_message = error.code, error.message
            event = service.answer(
                session, entry, events.FAILED, events.failed(error, payment=payment)
            )
    return Outcome(event, snap.id)


async def capture(ctx: PaymentsContext, envelope: Envelope, source_ref: str | None) -> Outcome:
    """Capture without a transfer (payport's own API): the platform keeps the funds."""
    async with ctx.db.transaction() as session:
        target, entry, done = await start(session, envelope, source_ref)
        if done is not None:
            return done
        try:
            command = parse_capture(envelope.payload)
        except PayportError as invalid:
            return reject(session, envelope, target, source_ref, invalid, entry=entry)
        payment = await repository.get(session, command.payment_id, for_update=True)
        problem = _capture_problem(payment, command.amount_minor)
        if problem is not None:
            return reject(
                session, envelope, target, source_ref, problem, payment=payment, entry=entry
            )
        assert payment is not None
        entry = entry or open_entry(session, envelope, source_ref, payment_id=payment.id)
        snap, command_key = snapshot(payment), entry.command_key
    error: PayportError | None = None
    captured: base.IntentView | None = None
    try:
        captured = await _capture(ctx, snap, command.amount_minor)
    except base.ProviderError as exc:
        error = to_payport_error(exc)
    async with ctx.db.transaction() as session:
        payment = await repository.get(session, snap.id, for_update=True)
        entry = await repository.get_inbox_entry(session, command_key)
        assert payment is not None and entry is not None
        if entry.status == "done":  # finished meanwhile: a redelivered copy or reconcile
            return Outcome(recorded_event(entry), snap.id)
        if captured is None or error is not None:
            assert error is not None
            event = service.answer(
                session, entry, events.FAILED, events.failed(error, payment=payment)
            )
            return Outcome(event, snap.id)
        service.record_capture(payment, captured)
        service.complete_capture(payment)
        event = service.answer(session, entry, events.CAPTURED, events.captured(payment))
    return Outcome(event, snap.id)


def _capture_problem(payment: Payment | None, amount_minor: int | None) -> PayportError | None:
    if payment is None:
        return NotFound("payment not found", field="payment_id")
    if payment.payment_status is not S.AUTHORIZED:
        return InvalidStatus(
            f"only an AUTHORIZED payment can be captured; this one is {payment.status}",
            field="status",
        )
    if amount_minor is not None and amount_minor > payment.amount_minor:
        return InvalidPayload(
            f"amount_to_capture exceeds the authorized {payment.amount_minor}",
            field="amount_to_capture",
        )
    return None
