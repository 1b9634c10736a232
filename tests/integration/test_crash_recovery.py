"""A crash between a provider call and the commit that records it repeats no side effect.

The crash is injected (named fault injection, the one place this suite
replaces real code): the transaction after the provider call raises once, as
if the process died there. The command stays queued, runs again, and the
provider answers the repeated call from its idempotency record.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from payport.messaging.envelope import parse_envelope
from payport.payments import authorize as authorize_module
from payport.payments import service
from payport.payments.commands import new_entry
from tests.harness import Harness, nested_authorize
from tests.provider_truth import by_payment


class SimulatedCrash(Exception):
    """Stands in for the process dying at this point."""


def crash_once(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    real = getattr(module, name)
    calls: list[int] = []

    async def crashing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise SimulatedCrash(name)
        return await real(*args, **kwargs)

    monkeypatch.setattr(module, name, crashing)
    return calls


async def test_crash_after_authorize_call_charges_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = crash_once(monkeypatch, authorize_module.service, "apply_intent")
    cid = await harness.command("authorize_payment", nested_authorize("order-crash"))
    await harness.drain()
    assert len(calls) == 2
    outcome = await harness.outcome(cid)
    assert outcome["type"] == "payment.authorized"
    intents = await by_payment(harness.runtime, "payment_intent")
    assert [len(v) for v in intents.values()] == [1]


async def test_crash_between_capture_and_transfer_transfers_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = await harness.authorize("order-half-release")
    payment_id = event["payload"]["payment_id"]
    provider = harness.runtime.provider
    real_transfer = provider.create_transfer
    attempts: list[int] = []

    async def transfer_after_crash(**kwargs: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise SimulatedCrash("died after capture, before transfer")
        return await real_transfer(**kwargs)

    monkeypatch.setattr(provider, "create_transfer", transfer_after_crash)
    cid = await harness.command(
        "release_payment",
        {"payment_id": payment_id, "runner_id": "r1", "runner_connect_account_id": "acct_r1"},
    )
    await harness.drain()
    assert len(attempts) == 2
    assert (await harness.outcome(cid))["type"] == "payment.released"
    transfers = await by_payment(harness.runtime, "transfer")
    assert len(transfers[payment_id]) == 1
    intents = await by_payment(harness.runtime, "payment_intent")
    assert intents[payment_id][0]["amount_received"] == 2500


async def test_crash_in_revert_commit_refunds_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = await harness.authorize("order-crash-revert")
    payment_id = event["payload"]["payment_id"]
    release = await harness.command(
        "release_payment",
        {"payment_id": payment_id, "runner_id": "r1", "runner_connect_account_id": "acct_r1"},
    )
    await harness.drain()
    assert (await harness.outcome(release))["type"] == "payment.released"
    calls = crash_once(monkeypatch, service, "complete_revert")
    cid = await harness.command("revert_payment", {"payment_id": payment_id, "reason": "duplicate"})
    await harness.drain()
    assert len(calls) == 2
    outcome = await harness.outcome(cid)
    assert outcome["type"] == "payment.reverted"
    assert outcome["payload"]["reason"] == "duplicate"
    refunds = await by_payment(harness.runtime, "refund")
    assert len(refunds[payment_id]) == 1
    assert refunds[payment_id][0]["amount"] == 2500


async def test_a_command_left_waiting_on_a_settled_payment_is_answered_when_it_runs(
    harness: Harness,
) -> None:
    """The state a race leaves: a second authorize command (its own correlation id) started
    while the first was settling, and its waiting entry committed after that settle had
    read the waiting list, so nobody answered it. When the command runs (or is re-sent), it
    answers itself from the settled payment, once, without a second provider call."""
    first = await harness.authorize("order-late-waiter")
    payment_id = first["payload"]["payment_id"]
    second_cid = str(uuid.uuid4())
    raw = {
        "type": "authorize_payment",
        "correlation_id": second_cid,
        "timestamp": "2025-03-31T10:15:30.123456",
        "payload": nested_authorize("order-late-waiter"),
    }
    envelope = parse_envelope(orjson.dumps(raw))
    async with harness.runtime.db.transaction() as session:  # what the losing start committed
        session.add(new_entry(envelope, None, payment_id=payment_id, status="waiting"))
    await harness.command("authorize_payment", raw["payload"], correlation_id=second_cid)
    await harness.drain()
    answer = await harness.outcome(second_cid)  # exactly one event for it
    assert answer["type"] == "payment.authorized"
    assert answer["payload"]["payment_id"] == payment_id
    intents = await by_payment(harness.runtime, "payment_intent")
    assert len(intents[payment_id]) == 1
