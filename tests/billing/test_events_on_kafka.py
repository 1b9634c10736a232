"""Billing events leave through the outbox on whichever transport is configured: Kafka here."""

from __future__ import annotations

from bench.broker import TansuBroker

from tests.billing.helpers import START, Billing
from tests.harness import Stack


async def test_billing_events_are_published_on_the_kafka_event_topic(
    postgres_url: str, kafka_broker: TansuBroker
) -> None:
    async with Stack.on_kafka(postgres_url, kafka_broker.bootstrap).started() as harness:
        billing = Billing(harness)
        plan = await billing.plan(price_minor=3000)
        clock = await billing.clock(START)
        sub = await billing.subscribe(plan["plan_id"], test_clock=clock)
        await billing.update(sub["subscription_id"], payment_method_id="pm_card_chargeDeclined")
        await billing.advance(clock, START.replace(month=2, day=16, hour=13))
        await harness.drain()
        events = await harness.all_events()
        assert [e["type"] for e in events] == [
            "subscription.created",
            "invoice.created",
            "invoice.paid",
            "subscription.updated",  # incomplete -> active
            "subscription.updated",  # the new card
            "subscription.renewed",
            "invoice.created",
            "invoice.payment_failed",
            "subscription.past_due",
            "invoice.payment_failed",
        ]
        assert {e["payload"].get("invoice", {}).get("subscription_id") for e in events} - {
            None
        } == {sub["subscription_id"]}
        assert all(e["source"] == "payment-service" and e["event_id"] for e in events)
