"""An authorization retried after the provider forgot its idempotency key makes no second intent.

Stripe keeps a key for at least 24 hours, then a request with the same key is a new
request. Here the first attempt's answer is lost to a crash (named fault injection, as in
tests/integration/test_crash_recovery.py), the provider then forgets every key (Stripe's
pruning: localstripe's compat layer, or the sandbox's own key table, emptied) and the
payment is made to look 25 hours old; the retry, by re-sent command or by reconcile, must
find the intent the first attempt made.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, update

from payport.db import utcnow
from payport.messaging.envelope import Envelope
from payport.payments import authorize, service
from payport.payments.models import Payment
from payport.payments.reconcile import reconcile
from payport.providers.sandbox.models import SandboxIdempotencyRecord
from tests.harness import Harness, nested_authorize
from tests.integration.test_crash_recovery import SimulatedCrash, crash_once
from tests.provider_truth import by_payment


def authorize_envelope(order_id: str, correlation_id: str) -> Envelope:
    return Envelope(
        "authorize_payment", correlation_id, "2025-03-31T10:15:30", nested_authorize(order_id)
    )


async def authorize_lost_to_a_crash(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, order_id: str
) -> Envelope:
    """The provider made the intent; the process died before recording it."""
    envelope = authorize_envelope(order_id, str(uuid.uuid4()))
    crash_once(monkeypatch, service, "apply_intent")
    with pytest.raises(SimulatedCrash):
        await authorize.authorize(harness.runtime.ctx, envelope, None)
    return envelope


async def a_day_passes(harness: Harness, order_id: str) -> None:
    """The provider forgets its idempotency keys, and the payment is 25 hours old."""
    if harness.stripe_webhooks is not None:
        settings = harness.runtime.settings
        async with httpx.AsyncClient(base_url=settings.stripe_api_base or "") as client:
            (await client.delete("/_config/compat/idempotency")).raise_for_status()
    else:
        async with harness.runtime.db.transaction() as session:
            await session.execute(delete(SandboxIdempotencyRecord))
    day_ago = utcnow() - timedelta(hours=25)
    async with harness.runtime.db.transaction() as session:
        await session.execute(
            update(Payment)
            .where(Payment.order_id == order_id)
            .values(created_at=day_ago, updated_at=day_ago)
        )


async def intents_of(harness: Harness, order_id: str) -> list[dict[str, Any]]:
    payment = await harness.payment_by_order(order_id)
    return (await by_payment(harness.runtime, "payment_intent")).get(payment["paymentId"], [])


async def test_resent_authorize_after_the_key_window_finds_the_first_intent(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await authorize_lost_to_a_crash(harness, monkeypatch, "order-next-day")
    assert (await harness.payment_by_order("order-next-day"))["status"] == "INITIATING"
    [made] = await intents_of(harness, "order-next-day")
    await a_day_passes(harness, "order-next-day")

    outcome = await authorize.authorize(harness.runtime.ctx, first, None)  # the re-sent copy
    await harness.drain()

    assert outcome.event is not None
    assert outcome.event.type == "payment.authorized"
    assert outcome.event.body["payload"]["payment_intent_id"] == made["id"]
    assert [intent["id"] for intent in await intents_of(harness, "order-next-day")] == [made["id"]]
    assert (await harness.outcome(first.correlation_id))["type"] == "payment.authorized"
    payment = await harness.payment_by_order("order-next-day")
    assert (payment["status"], payment["paymentIntentId"]) == ("AUTHORIZED", made["id"])


async def test_reconcile_after_the_key_window_finds_the_first_intent(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await authorize_lost_to_a_crash(harness, monkeypatch, "order-reconciled-late")
    [made] = await intents_of(harness, "order-reconciled-late")
    await a_day_passes(harness, "order-reconciled-late")

    summary = await reconcile(harness.runtime.ctx, older_than=timedelta(minutes=10))
    await harness.drain()

    assert summary.as_dict() == {"authorized": 1}
    assert [i["id"] for i in await intents_of(harness, "order-reconciled-late")] == [made["id"]]
    assert (await harness.outcome(first.correlation_id))["type"] == "payment.authorized"


async def test_young_retry_is_answered_by_the_key_without_a_lookup(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the window nothing is looked up: the provider replays the first answer."""
    first = await authorize_lost_to_a_crash(harness, monkeypatch, "order-same-hour")
    [made] = await intents_of(harness, "order-same-hour")
    calls: list[str] = []
    provider = harness.runtime.provider
    original = provider.find_payment_intent_for_payment

    async def counted(payment_id: str) -> Any:
        calls.append(payment_id)
        return await original(payment_id)

    monkeypatch.setattr(provider, "find_payment_intent_for_payment", counted)
    outcome = await authorize.authorize(harness.runtime.ctx, first, None)

    assert outcome.event is not None and outcome.event.type == "payment.authorized"
    assert calls == []
    assert [i["id"] for i in await intents_of(harness, "order-same-hour")] == [made["id"]]
