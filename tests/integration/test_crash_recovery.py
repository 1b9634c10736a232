"""A crash between a provider call and the commit that records it repeats no side effect.

The crash is injected (named fault injection, the one place this suite
replaces real code): the transaction after the provider call raises once, as
if the process died there. The command stays queued, runs again, and the
provider answers the repeated call from its idempotency record.
"""

from __future__ import annotations

from typing import Any

import pytest

from payport.payments import authorize as authorize_module
from payport.payments import service
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
