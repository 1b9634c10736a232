"""What the webhook tests share: posting signed events, reading a payment as stored."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from payport.payments import repository
from payport.payments.models import Payment
from payport.webhooks.models import ProviderEvent
from payport.webhooks.signature import signature_header
from tests.harness import Harness

RELEASE_TO = {"runner_id": "runner_bob", "runner_connect_account_id": "acct_bob"}


async def post_event(
    harness: Harness, event: dict[str, Any], *, timestamp: int | None = None
) -> httpx.Response:
    """Deliver `event` the way Stripe does: raw JSON body, signed with a configured secret."""
    body = orjson.dumps(event)
    secret = (await harness.runtime.webhook_secrets())[0]
    header = signature_header(secret, body, timestamp=timestamp or int(time.time()))
    return await harness.client.post(
        "/stripe-webhook", content=body, headers={"Stripe-Signature": header}
    )


async def payment(harness: Harness, payment_id: str) -> Payment:
    async with harness.runtime.db.read() as session:
        found = await repository.get(session, payment_id)
    assert found is not None
    return found


async def stored_event_count(harness: Harness, event_id: str) -> int:
    async with harness.runtime.db.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(ProviderEvent)
            .where(ProviderEvent.event_id == event_id)
        )
    return int(count or 0)


async def stored_bodies(harness: Harness, event_type: str) -> list[dict[str, Any]]:
    """Events payport stored (the provider's, as delivered), oldest first."""
    async with harness.runtime.db.read() as session:
        rows = await session.scalars(
            select(ProviderEvent.body)
            .where(ProviderEvent.event_type == event_type)
            .order_by(ProviderEvent.id)
        )
        return [orjson.loads(body) for body in rows]


async def released(harness: Harness, order_id: str) -> str:
    """An authorized, released payment; returns its id."""
    authorized = await harness.authorize(order_id)
    payment_id: str = authorized["payload"]["payment_id"]
    cid = await harness.command("release_payment", {"payment_id": payment_id, **RELEASE_TO})
    await harness.drain()
    assert (await harness.outcome(cid))["type"] == "payment.released"
    return payment_id


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == event_type]
