"""Payport verifies Stripe's signature scheme itself; the official SDK agrees with it.

Each case goes through the real endpoint: a rejected event answers 400 and
is not stored; an accepted one is stored once under its event id.
"""

from __future__ import annotations

import time

import orjson
import pytest
import stripe

from payport.errors import InvalidSignature
from payport.webhooks.signature import signature_header, verify_signature
from tests.harness import Harness, Stack
from tests.webhooks.helpers import stored_event_count
from tests.webhooks.recorded import event

OLD_SECRET = "whsec_old_rotating_out"
NEW_SECRET = "whsec_new_rotating_in"


def body_of(event_id: str) -> bytes:
    return orjson.dumps(
        event("customer.created", {"id": "cus_x", "object": "customer"}, event_id=event_id)
    )


async def deliver(harness: Harness, body: bytes, header: str) -> int:
    response = await harness.client.post(
        "/stripe-webhook", content=body, headers={"Stripe-Signature": header}
    )
    return response.status_code


async def secret(harness: Harness) -> str:
    return (await harness.runtime.webhook_secrets())[0]


async def test_event_signed_by_the_stripe_sdk_is_accepted(harness: Harness) -> None:
    body = body_of("evt_sdk_signed")
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), await secret(harness))
    assert await deliver(harness, body, header) == 200
    assert await stored_event_count(harness, "evt_sdk_signed") == 1


def test_payport_signature_is_accepted_by_the_stripe_sdk() -> None:
    body = body_of("evt_payport_signed")
    parsed = stripe.Webhook.construct_event(
        body, signature_header(NEW_SECRET, body), NEW_SECRET, tolerance=300
    )
    assert parsed["id"] == "evt_payport_signed"


@pytest.mark.parametrize("age_s", [301, 3600])
def test_stale_signature_is_refused_by_payport_and_the_sdk(age_s: int) -> None:
    body = body_of("evt_stale")
    header = signature_header(NEW_SECRET, body, timestamp=int(time.time()) - age_s)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_signature(body, header, [NEW_SECRET], tolerance_s=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body.decode(), header, NEW_SECRET, tolerance=300)


async def test_stale_tampered_and_wrong_secret_events_answer_400_and_are_not_stored(
    harness: Harness,
) -> None:
    key = await secret(harness)
    now = int(time.time())
    body = body_of("evt_refused")
    tampered = body.replace(b"cus_x", b"cus_y")
    cases = [
        (body, signature_header(key, body, timestamp=now - 301)),  # stale
        (tampered, signature_header(key, body, timestamp=now)),  # body changed after signing
        (body, signature_header("whsec_someone_else", body, timestamp=now)),  # wrong secret
        (body, f"t={now},v0={'0' * 64}"),  # only the test scheme, never verified
    ]
    for sent, header in cases:
        assert await deliver(harness, sent, header) == 400
    assert await stored_event_count(harness, "evt_refused") == 0


async def test_replayed_event_is_stored_once(harness: Harness) -> None:
    body = body_of("evt_replayed")
    key = await secret(harness)
    first = await harness.client.post(
        "/stripe-webhook", content=body, headers={"Stripe-Signature": signature_header(key, body)}
    )
    again = await harness.client.post(
        "/stripe-webhook", content=body, headers={"Stripe-Signature": signature_header(key, body)}
    )
    assert first.json() == {"received": True, "duplicate": False}
    assert again.json() == {"received": True, "duplicate": True}
    assert await stored_event_count(harness, "evt_replayed") == 1


async def test_every_configured_secret_is_accepted_during_a_rotation(stack: Stack) -> None:
    async with stack.started(STRIPE_WEBHOOK_SECRET=f"{OLD_SECRET}, {NEW_SECRET}") as harness:
        now = int(time.time())
        for number, key in enumerate((OLD_SECRET, NEW_SECRET)):
            body = body_of(f"evt_rotation_{number}")
            assert await deliver(harness, body, signature_header(key, body)) == 200
        body = body_of("evt_rotation_both")
        old = signature_header(OLD_SECRET, body, timestamp=now).split(",")[1]
        both = f"{signature_header('whsec_retired', body, timestamp=now)},{old}"
        assert await deliver(harness, body, both) == 200  # any one v1 may match
        assert (
            await deliver(harness, body_of("evt_x"), signature_header("whsec_retired", body)) == 400
        )


async def test_tolerance_is_configurable(stack: Stack) -> None:
    async with stack.started(PAYPORT_WEBHOOK_TOLERANCE=60) as harness:
        key = await secret(harness)
        body = body_of("evt_tolerance")
        now = int(time.time())
        assert await deliver(harness, body, signature_header(key, body, timestamp=now - 61)) == 400
        assert await deliver(harness, body, signature_header(key, body, timestamp=now - 50)) == 200
