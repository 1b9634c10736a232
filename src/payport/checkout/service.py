"""Checkout decisions: open (or reuse) a session for an order, and act on its outcome.

The provider call runs outside any transaction, keyed `checkout_session:{payment_id}` so a
retry after a crash or a concurrent duplicate gets the same session. An outcome moves a
payment out of INITIATED once; in the same transaction it writes the order calls it owes
and a `checkout.completed` / `checkout.failed` event, so a duplicate or late webhook
changes nothing twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from payport.checkout import calls
from payport.checkout import repository as payments
from payport.checkout.auth import AuthenticatedUser
from payport.checkout.errors import (
    CheckoutPaymentNotFound,
    Forbidden,
    OrderNotPending,
    PaymentAlreadyCompleted,
    PaymentAlreadyFailed,
    SessionCreationFailed,
)
from payport.checkout.models import CheckoutPayment, CheckoutStatus
from payport.checkout.orders import Order, OrderServiceClient, order_url
from payport.config import Settings
from payport.db import Database, utcnow
from payport.messaging.outbox import emit
from payport.providers.base import (
    CS_NO_PAYMENT_REQUIRED,
    CS_PAID,
    CheckoutLineItem,
    CheckoutSessionRequest,
    CheckoutSessionView,
    PaymentProvider,
    ProviderError,
)
from payport.providers.errors import with_retries

log = logging.getLogger(__name__)

SESSION_COMPLETED = "checkout.session.completed"
SESSION_EXPIRED = "checkout.session.expired"
INTENT_FAILED = "payment_intent.payment_failed"
# Delayed payment methods (bank debits) complete the session unpaid, then settle later.
ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
ASYNC_FAILED = "checkout.session.async_payment_failed"
CHECKOUT_EVENTS = frozenset(
    {SESSION_COMPLETED, SESSION_EXPIRED, INTENT_FAILED, ASYNC_SUCCEEDED, ASYNC_FAILED}
)
CHECKOUT_SESSION_PLACEHOLDER = "{CHECKOUT_SESSION_ID}"
# Stripe wants `expires_at` at least 30 minutes ahead when the request arrives.
_MIN_AHEAD = timedelta(minutes=30, seconds=30)
_EXPIRY_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class CheckoutContext:
    db: Database
    provider: PaymentProvider
    settings: Settings
    orders: OrderServiceClient
    on_commit: Callable[[], None] = lambda: None


@dataclass(frozen=True, slots=True)
class OpenSession:
    session_id: str
    checkout_url: str


async def create_session(
    ctx: CheckoutContext, *, user: AuthenticatedUser, order_id: str
) -> OpenSession:
    """The open session for this order, created if there is none yet."""
    order = await ctx.orders.fetch(order_id)
    if order.user_id != user.id:
        raise Forbidden("Order belongs to another user")
    async with ctx.db.read() as session:
        existing = await payments.get_by_order_id(session, order_id)
    if existing is not None and existing.checkout_status is CheckoutStatus.SUCCESS:
        raise PaymentAlreadyCompleted()
    if order.status != "PENDING":
        raise OrderNotPending(order.status)
    if existing is not None and existing.checkout_status is CheckoutStatus.FAILED:
        raise PaymentAlreadyFailed()
    if existing is not None and existing.session_id and existing.checkout_url:
        if existing.expires_at is not None and existing.expires_at <= utcnow():
            raise PaymentAlreadyFailed()  # expired; its webhook is on the way
        return OpenSession(existing.session_id, existing.checkout_url)
    payment = existing or await _record_payment(ctx, order, user)
    if payment.session_id and payment.checkout_url:
        return OpenSession(payment.session_id, payment.checkout_url)
    opened = await _open_provider_session(ctx, payment)
    return await _remember_session(ctx, payment.id, opened)


async def _record_payment(
    ctx: CheckoutContext, order: Order, user: AuthenticatedUser
) -> CheckoutPayment:
    """Insert the INITIATED row; a concurrent request for the same order may win, then use
    theirs (the unique order id decides)."""
    items = [
        {
            "productId": item.product_id, "name": item.name, "quantity": item.quantity,
            "unit_amount": item.unit_price.amount_minor,
        }
        for item in order.items
    ]  # fmt: skip
    payment = CheckoutPayment(
        id=str(uuid.uuid4()), order_id=order.order_id, user_id=user.id, user_email=user.email,
        provider=ctx.provider.name, amount_minor=order.total.amount_minor,
        currency=order.total.currency, items=orjson.dumps(items).decode(),
        status=CheckoutStatus.INITIATED.value, expires_at=_fresh_expiry(ctx.settings),
    )  # fmt: skip
    try:
        async with ctx.db.transaction() as session:
            session.add(payment)
    except IntegrityError:
        async with ctx.db.read() as session:
            winner = await payments.get_by_order_id(session, order.order_id)
        if winner is None:
            raise
        return winner
    return payment


def session_request(settings: Settings, payment: CheckoutPayment) -> CheckoutSessionRequest:
    """What the provider is asked for, derived only from the stored row (so a retry with the
    same idempotency key sends the same parameters)."""
    items = orjson.loads(payment.items)
    lines = [
        CheckoutLineItem(item["name"], item["unit_amount"], item["quantity"]) for item in items
    ]
    if sum(line.unit_amount_minor * line.quantity for line in lines) != payment.amount_minor:
        # Discounts or shipping make the total differ from the items: charge the total.
        lines = [CheckoutLineItem(f"Order {payment.order_id}", payment.amount_minor, 1)]
    base = settings.base_url
    success = settings.checkout_success_url or (
        f"{base}/payments/checkout/success?session_id={CHECKOUT_SESSION_PLACEHOLDER}"
    )
    cancel = settings.checkout_cancel_url or (
        f"{base}/payments/checkout/cancel?session_id={CHECKOUT_SESSION_PLACEHOLDER}"
    )
    return CheckoutSessionRequest(
        currency=payment.currency,
        line_items=lines,
        success_url=success,
        cancel_url=cancel,
        expires_at=payment.expires_at or _fresh_expiry(settings),
        client_reference_id=payment.order_id,
        metadata={"order_id": payment.order_id, "checkout_payment_id": payment.id},
        customer_email=payment.user_email,
    )


def _fresh_expiry(settings: Settings) -> datetime:
    """Whole seconds (Stripe's resolution), so the stored value is what is sent."""
    now = utcnow().replace(microsecond=0)
    return now + timedelta(seconds=settings.checkout_session_ttl_s) + _EXPIRY_MARGIN


async def _open_provider_session(
    ctx: CheckoutContext, payment: CheckoutPayment
) -> CheckoutSessionView:
    """The key names the row and its expiry: a retry sends the same request, and a row
    whose first attempt failed long ago asks anew with a later expiry."""
    if payment.expires_at is None or payment.expires_at < utcnow() + _MIN_AHEAD:
        payment = await _renew_expiry(ctx, payment.id)
    request = session_request(ctx.settings, payment)
    key = f"checkout_session:{payment.id}:{int(request.expires_at.timestamp())}"
    try:
        return await with_retries(
            lambda: ctx.provider.create_checkout_session(request, idempotency_key=key)
        )
    except ProviderError as exc:
        log.error(
            "checkout session not created order_id=%s payment_id=%s type=%s code=%s",
            payment.order_id, payment.id, exc.error_type, exc.code,
        )  # fmt: skip
        raise SessionCreationFailed() from None


async def _renew_expiry(ctx: CheckoutContext, payment_id: str) -> CheckoutPayment:
    async with ctx.db.transaction() as session:
        payment = await payments.get(session, payment_id, for_update=True)
        if payment is None:
            raise CheckoutPaymentNotFound()
        if payment.session_id is None:
            payment.expires_at = _fresh_expiry(ctx.settings)
        return payment


async def _remember_session(
    ctx: CheckoutContext, payment_id: str, opened: CheckoutSessionView
) -> OpenSession:
    async with ctx.db.transaction() as session:
        payment = await payments.get(session, payment_id, for_update=True)
        if payment is None:
            raise CheckoutPaymentNotFound()
        if payment.session_id is None:
            payment.session_id = opened.id
            payment.checkout_url = opened.url
            payment.expires_at = _from_unix(opened.expires_at)
        return OpenSession(payment.session_id, payment.checkout_url or opened.url or "")


def _from_unix(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


async def payment_for_order(
    ctx: CheckoutContext, *, user: AuthenticatedUser, order_id: str
) -> CheckoutPayment:
    async with ctx.db.read() as session:
        payment = await payments.get_by_order_id(session, order_id)
    if payment is None:
        raise CheckoutPaymentNotFound()
    if payment.user_id != user.id:
        raise Forbidden("Payment belongs to another user")
    return payment


# --- outcomes (called by the webhook processor, inside its transaction) ---------------------


async def apply_checkout_event(
    session: AsyncSession, event_type: str, obj: Mapping[str, Any], settings: Settings
) -> bool:
    """Apply one provider event; False when no checkout payment is concerned."""
    payment = await _payment_for_event(session, event_type, obj)
    if payment is None:
        return False
    if event_type in (SESSION_COMPLETED, ASYNC_SUCCEEDED):
        if obj.get("payment_status") in (CS_PAID, CS_NO_PAYMENT_REQUIRED):
            _succeed(session, payment, obj, settings)
    elif event_type == SESSION_EXPIRED:
        _fail(session, payment, "expired", settings, expire_session=False)
    elif event_type == ASYNC_FAILED:
        _fail(session, payment, "async_payment_failed", settings, expire_session=False)
    elif event_type == INTENT_FAILED:
        error = obj.get("last_payment_error") or {}
        reason = error.get("decline_code") or error.get("code") or "payment_failed"
        _fail(session, payment, str(reason), settings, expire_session=True)
    return True


async def _payment_for_event(
    session: AsyncSession, event_type: str, obj: Mapping[str, Any]
) -> CheckoutPayment | None:
    metadata = obj.get("metadata") or {}
    payment_id = metadata.get("checkout_payment_id") if isinstance(metadata, Mapping) else None
    if isinstance(payment_id, str) and payment_id:
        found = await payments.get(session, payment_id, for_update=True)
        if found is not None:
            return found
    object_id = obj.get("id")
    if not isinstance(object_id, str):
        return None
    if event_type == INTENT_FAILED:
        return await payments.get_by_intent_id(session, object_id, for_update=True)
    return await payments.get_by_session_id(session, object_id, for_update=True)


def _succeed(
    session: AsyncSession, payment: CheckoutPayment, obj: Mapping[str, Any], settings: Settings
) -> None:
    intent = obj.get("payment_intent")
    if payment.checkout_status is CheckoutStatus.FAILED and isinstance(intent, str):
        # Paid in the moment between a decline and payport closing the session: the order
        # is being cancelled, so the money goes back.
        log.warning("checkout paid after it failed; refunding order_id=%s", payment.order_id)
        _provider_call(session, payment, "refund", {"payment_intent": intent})
    if payment.checkout_status is not CheckoutStatus.INITIATED:
        return
    details = obj.get("customer_details") or {}
    payment.status = CheckoutStatus.SUCCESS.value
    payment.payment_intent_id = intent if isinstance(intent, str) else None
    email = details.get("email") if isinstance(details, Mapping) else None
    payment.customer_email = email if isinstance(email, str) else payment.customer_email
    payment.updated_at = utcnow()
    _order_status_call(session, payment, "CONFIRMED", settings)
    _emit(session, "checkout.completed", payment)


def _fail(
    session: AsyncSession,
    payment: CheckoutPayment,
    reason: str,
    settings: Settings,
    *,
    expire_session: bool,
) -> None:
    if payment.checkout_status is not CheckoutStatus.INITIATED:
        return
    payment.status = CheckoutStatus.FAILED.value
    payment.failure_reason = reason[:255]
    payment.updated_at = utcnow()
    if expire_session and payment.session_id:
        _provider_call(session, payment, "expire_session", {"session_id": payment.session_id})
    for index, item in enumerate(orjson.loads(payment.items)):
        calls.add_call(
            session, call_key=f"release:{payment.id}:{index}", order_id=payment.order_id,
            payment_id=payment.id, target=calls.INVENTORY, method="POST",
            path=settings.inventory_release_path,
            body={
                "orderId": payment.order_id, "productId": item["productId"],
                "quantity": item["quantity"],
            },
        )  # fmt: skip
    _order_status_call(session, payment, "CANCELLED", settings)
    _emit(session, "checkout.failed", payment)


def _provider_call(
    session: AsyncSession, payment: CheckoutPayment, action: str, body: dict[str, object]
) -> None:
    calls.add_call(
        session, call_key=f"{action}:{payment.id}", order_id=payment.order_id,
        payment_id=payment.id, target=calls.PROVIDER, method="POST", path=action,
        body={"action": action, **body},
    )  # fmt: skip


def _order_status_call(
    session: AsyncSession, payment: CheckoutPayment, status: str, settings: Settings
) -> None:
    path = order_url(settings, settings.order_status_path, payment.order_id).removeprefix(
        settings.order_service_url.rstrip("/")
    )
    calls.add_call(
        session, call_key=f"order_status:{payment.id}", order_id=payment.order_id,
        payment_id=payment.id, target=calls.ORDER, method="PATCH", path=path,
        body={"status": status, "paymentId": payment.id},
    )  # fmt: skip


def _emit(session: AsyncSession, event_type: str, payment: CheckoutPayment) -> None:
    payload: dict[str, Any] = {
        "payment_id": payment.id, "order_id": payment.order_id, "user_id": payment.user_id,
        "session_id": payment.session_id, "amount": payment.amount_minor,
        "currency": payment.currency, "status": payment.status,
        "payment_intent_id": payment.payment_intent_id,
    }  # fmt: skip
    if payment.failure_reason:
        payload["reason"] = payment.failure_reason
    emit(session, event_type, payload, correlation_id=payment.id, key=payment.order_id)
