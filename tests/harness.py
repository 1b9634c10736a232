"""payport assembled for tests: the real app, runtime, sandbox and database, driven step by step."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from bench.server import free_port
from sqlalchemy import delete, func, select

import payport.models
from payport.app import create_app
from payport.config import load_settings
from payport.messaging.kafka import KafkaCommandBus
from payport.messaging.models import LocalCommand, OutboxEvent
from payport.runtime import Runtime
from tests.localstripe_server import LocalStripe

BASE = "http://payport.test"
STRIPE_SECRET_KEY = "sk_test_payportLocalstripe7f3c9a1e"
STRIPE_WEBHOOK_SECRET = "whsec_payportLocalstripe4b8e2d60"
# Customers the tests name; upstream user services own them, so on Stripe they exist already.
STRIPE_CUSTOMERS = ("cus_alice", "cus_seed002", "cus_1", "cus_123", "cus_x", "cus_y")


def sandbox_only(reason: str) -> pytest.MarkDecorator:
    """Run a harness test on the sandbox stacks only (tests/conftest.py leaves out the Stripe
    ones); `reason` says what Stripe-on-localstripe cannot do there."""
    return pytest.mark.sandbox_only(reason)


@dataclass(frozen=True)
class Stack:
    """Where a harness runs: a database URL and the settings that pick the transport."""

    database_url: str
    settings: dict[str, Any] = field(default_factory=dict)
    localstripe: LocalStripe | None = None

    @classmethod
    def on_kafka(cls, database_url: str, bootstrap: str, *, partitions: int = 1) -> Stack:
        """Topics and a consumer group of this stack's own on a shared broker.

        One partition by default keeps the event topic in publish order, so the
        contract tests read exactly what /api/v1/events would show.
        """
        suffix = uuid.uuid4().hex[:10]
        return cls(
            database_url,
            {
                "PAYPORT_TRANSPORT": "kafka",
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "PAYMENT_COMMANDS_TOPIC": f"commands_{suffix}",
                "PAYMENT_EVENTS_TOPIC": f"events_{suffix}",
                "PAYMENT_CONSUMER_GROUP": f"group_{suffix}",
                "PAYPORT_KAFKA_PARTITIONS": partitions,
                "PAYPORT_KAFKA_SESSION_TIMEOUT_MS": 2000,
            },
        )

    @classmethod
    def on_stripe(cls, database_url: str, localstripe: LocalStripe) -> Stack:
        """PAYPORT_PROVIDER=stripe against the session's localstripe, emptied for this test."""
        localstripe.wipe()
        settings = {
            "PAYPORT_PROVIDER": "stripe",
            "STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
            "STRIPE_API_BASE": localstripe.url,
            "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        }
        return cls(database_url, settings, localstripe)

    @property
    def is_kafka(self) -> bool:
        return self.settings.get("PAYPORT_TRANSPORT") == "kafka"

    def started(self, **extra: Any) -> AbstractAsyncContextManager[Harness]:
        return Harness.started(
            self.database_url, localstripe=self.localstripe, **(self.settings | extra)
        )


class StripeWebhooks:
    """localstripe's webhooks, delivered to payport served on a real 127.0.0.1 port.

    localstripe posts each event as Stripe does (signed with the secret payport is
    configured with); `idle` waits until none is in flight, and `Harness.drain` until
    payport applied them all.
    """

    def __init__(self, localstripe: LocalStripe, app: Any) -> None:
        self._http = httpx.AsyncClient(base_url=localstripe.url, timeout=10.0)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/stripe-webhook"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._serving = asyncio.create_task(self._server.serve())
        while not self._server.started:
            assert not self._serving.done(), "payport's webhook server did not start"
            await asyncio.sleep(0.01)
        registration = {"url": self.url, "secret": STRIPE_WEBHOOK_SECRET}
        response = await self._http.post("/_config/webhooks/payport", data=registration)
        response.raise_for_status()
        for customer in STRIPE_CUSTOMERS:
            created = await self._http.post("/_config/compat/customers", data={"id": customer})
            created.raise_for_status()

    async def deliveries(self) -> tuple[int, int]:
        """(in flight, started so far)."""
        body = (await self._http.get("/_config/compat/webhooks")).json()
        return int(body["pending"]), int(body["sent"])

    async def idle(self, timeout_s: float = 15.0) -> int:
        """Wait until no delivery is in flight; returns how many were started."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            pending, sent = await self.deliveries()
            if pending == 0:
                return sent
            assert loop.time() < deadline, f"{pending} localstripe webhooks still in flight"
            await asyncio.sleep(0.01)

    async def authenticate(self, intent_id: str, *, approve: bool) -> httpx.Response:
        """The customer answers 3-D Secure, through localstripe's stand-in for Stripe.js."""
        auth = {"Authorization": f"Bearer {STRIPE_SECRET_KEY}"}
        intent = (await self._http.get(f"/v1/payment_intents/{intent_id}", headers=auth)).json()
        answer = {"client_secret": intent["client_secret"], "success": str(approve).lower()}
        return await self._http.post(
            f"/v1/payment_intents/{intent_id}/_authenticate", data=answer, headers=auth
        )

    async def aclose(self) -> None:
        self._server.should_exit = True
        if self._serving is not None:
            await self._serving
        await self._http.aclose()


class KafkaEvents:
    """Everything on the event topic, read by a group-less consumer as it arrives."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._consumer: AIOKafkaConsumer | None = None
        self._events: list[dict[str, Any]] = []
        self._base = 0  # events before the last `forget_seen()` no longer count

    async def read_at_least(self, count: int, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        if len(self._events) - self._base < count:
            consumer = await self._started()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while len(self._events) - self._base < count:
                seen = len(self._events) - self._base
                assert loop.time() < deadline, f"{seen} of {count} events on Kafka"
                for records in (await consumer.getmany(timeout_ms=50)).values():
                    self._events += [orjson.loads(record.value) for record in records]
        return self._events[self._base :]

    def forget_seen(self) -> None:
        self._base = len(self._events)

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=10,
            )
            await consumer.start()
            partitions = consumer.partitions_for_topic(self._topic) or set()
            assigned = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            self._consumer = consumer
        return self._consumer

    async def aclose(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


class Harness:
    def __init__(
        self,
        runtime: Runtime,
        client: httpx.AsyncClient,
        stripe_webhooks: StripeWebhooks | None = None,
    ) -> None:
        self.runtime = runtime
        self.client = client
        self.stripe_webhooks = stripe_webhooks
        self._cursor = 0
        settings = runtime.settings
        self.kafka_events = (
            KafkaEvents(settings.kafka_bootstrap_servers, settings.events_topic)
            if settings.transport == "kafka"
            else None
        )

    @classmethod
    @asynccontextmanager
    async def started(
        cls, database_url: str, *, localstripe: LocalStripe | None = None, **settings: Any
    ) -> AsyncIterator[Harness]:
        config = load_settings(
            DATABASE_URL=database_url,
            PAYPORT_PUBLIC_URL=BASE,
            PAYPORT_SANDBOX_WEBHOOK_URL=f"{BASE}/stripe-webhook",
            **settings,
        )
        runtime = Runtime(config)
        await wipe(runtime)
        app = create_app(config, runtime=runtime)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        runtime.use_webhook_client(client)
        webhooks = None if localstripe is None else StripeWebhooks(localstripe, app)
        harness = cls(runtime, client, webhooks)
        try:
            if webhooks is not None:
                await webhooks.start()
            yield harness
        finally:
            if webhooks is not None:
                await webhooks.aclose()
            await runtime.stop()
            await client.aclose()
            if harness.kafka_events is not None:
                await harness.kafka_events.aclose()

    async def command(
        self, kind: str, payload: dict[str, Any], *, correlation_id: str | None = None
    ) -> str:
        correlation_id = correlation_id or str(uuid.uuid4())
        envelope = {
            "type": kind,
            "correlation_id": correlation_id,
            "timestamp": "2025-03-31T10:15:30.123456",
            "payload": payload,
        }
        response = await self.client.post("/api/v1/commands", content=orjson.dumps(envelope))
        assert response.status_code == 202, response.text
        return correlation_id

    async def drain(self) -> None:
        """Run the worker until idle; on Stripe, until localstripe's webhooks are applied too."""
        if self.stripe_webhooks is None:
            await self.runtime.drain()
            return
        while True:
            sent = await self.stripe_webhooks.idle()
            await self.runtime.drain()
            if await self.stripe_webhooks.deliveries() == (0, sent):
                return

    async def reset(self) -> None:
        """Start over within one test (hypothesis examples): empty tables, no old events."""
        await self.drain()
        if self.kafka_events is not None:
            await self.all_events()  # everything published so far has been read...
            self.kafka_events.forget_seen()  # ...and stops counting
        await wipe(self.runtime)
        self._cursor = 0

    async def answer_3ds(self, intent_id: str, *, approve: bool, expect_ok: bool = True) -> None:
        """The customer approves or fails 3-D Secure: on the sandbox's page, or on Stripe's.
        Without `expect_ok` a refusal (the intent moved on meanwhile) is fine too."""
        if self.stripe_webhooks is not None:
            response = await self.stripe_webhooks.authenticate(intent_id, approve=approve)
        else:
            action = "approve" if approve else "fail"
            response = await self.client.post(f"/sandbox/authenticate/{intent_id}/{action}")
        assert response.status_code == 200 or not expect_ok, response.text

    async def new_events(self) -> list[dict[str, Any]]:
        """Events published since the last call."""
        if self.kafka_events is not None:
            events = await self.all_events()
            added, self._cursor = events[self._cursor :], len(events)
            return added
        response = await self.client.get(
            "/api/v1/events", params={"after": self._cursor, "limit": 1000}
        )
        assert response.status_code == 200
        body = response.json()
        self._cursor = body["next_cursor"]
        events: list[dict[str, Any]] = body["data"]
        return events

    async def stored_events(self) -> list[dict[str, Any]]:
        """Published events as payport's outbox records them (GET /api/v1/events, every page)."""
        events: list[dict[str, Any]] = []
        cursor = 0
        while True:
            response = await self.client.get(
                "/api/v1/events", params={"after": cursor, "limit": 1000}
            )
            body = response.json()
            events += body["data"]
            cursor = body["next_cursor"]
            if not body["has_more"]:
                return events

    async def all_events(self) -> list[dict[str, Any]]:
        """Published events in publish order: from the event topic itself on Kafka."""
        if self.kafka_events is not None:
            published = await self._scalar(
                select(func.count(OutboxEvent.id)).where(OutboxEvent.publish_seq.is_not(None))
            )
            return list(await self.kafka_events.read_at_least(published))
        return await self.stored_events()

    async def commands_submitted(self) -> int:
        """Commands put on the transport so far (rows locally, messages on Kafka)."""
        bus = self.runtime.bus
        if isinstance(bus, KafkaCommandBus):
            return sum(offset + 1 for offset in bus.produced.values())
        return await self._scalar(select(func.count(LocalCommand.id)))

    async def _scalar(self, statement: Any) -> int:
        async with self.runtime.db.read() as session:
            return int((await session.execute(statement)).scalar_one())

    async def authorize(
        self, order_id: str, *, amount: int = 2500, payment_method: str = "pm_card_visa"
    ) -> dict[str, Any]:
        """Authorize through the command path and return the outcome event."""
        cid = await self.command(
            "authorize_payment", nested_authorize(order_id, amount, payment_method)
        )
        await self.drain()
        return await self.outcome(cid)

    async def outcome(self, correlation_id: str) -> dict[str, Any]:
        matches = [e for e in await self.all_events() if e["correlation_id"] == correlation_id]
        assert len({e["event_id"] for e in matches}) == 1, matches
        return matches[0]

    async def payment_by_order(self, order_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/payment/{order_id}/status")
        assert response.status_code == 200, response.text
        payment: dict[str, Any] = response.json()["payment"]
        return payment


def nested_authorize(
    order_id: str, amount: int = 2500, payment_method: str = "pm_card_visa"
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer": {
            "clerkUserId": "user_alice",
            "stripeCustomerId": "cus_alice",
            "userStripeCard": {"payment_method_id": payment_method},
        },
        "order": {"amount": amount, "description": "Campus delivery"},
    }


async def wipe(runtime: Runtime) -> None:
    """Empty every table so each test starts from nothing (schema stays migrated)."""
    async with runtime.db.transaction() as session:
        for table in reversed(payport.models.Base.metadata.sorted_tables):
            await session.execute(delete(table))
