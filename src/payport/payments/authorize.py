"""authorize_payment: hold the money (manual capture), or learn why not."""

from __future__ import annotations

import logging

from payport.errors import PayportError
from payport.messaging.envelope import Envelope
from payport.payments import repository, service
from payport.payments.commands import (
    Outcome,
    PaymentsContext,
    recorded_event,
    reject,
    start,
)
from payport.payments.models import Payment
from payport.payments.schemas import parse_authorize
from payport.payments.states import PaymentStatus
from payport.providers import base
from payport.providers.errors import to_payport_error, with_retries

log = logging.getLogger(__name__)
S = PaymentStatus


async def authorize(ctx: PaymentsContext, envelope: Envelope, source_ref: str | None) -> Outcome:
    async with ctx.db.transaction() as session:
        target, entry, done = await start(session, envelope, source_ref)
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
                return reject(session, envelope, target, source_ref, error)
            payment = await repository.get_by_order_id(session, command.order_id)
            if payment is None:
                payment = service.create_payment(session, command, envelope.correlation_id)
            entry = service.open_entry(
                session,
                kind=envelope.type,
                target=target,
                correlation_id=envelope.correlation_id,
                payment_id=payment.id,
                status="waiting",
            )
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
        outcome_event = recorded_event(entry)
    return Outcome(outcome_event, payment_id)
