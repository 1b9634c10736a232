"""Refunds of released payments: the runner's transfer is reversed in proportion, the platform
gives back its fee's share, and the books end exactly where a revert would leave them.

Runs on every stack (sandbox, Kafka, Stripe on localstripe) with a 10% platform fee.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from payport.ledger.models import LedgerEntry
from payport.refunds import service as refunds
from payport.refunds.models import Refund
from tests.harness import Harness, Stack
from tests.ledger.helpers import assert_ledger_clean, balance, released, reverted, run
from tests.provider_truth import by_payment

FEE_BPS = 1000  # 10%: a capture of 1001 pays the runner 901 and the platform 100
RUNNER, CUSTOMER = "runner:runner_bob", "customer:user_alice"


@pytest.fixture
async def harness(stack: Stack) -> AsyncIterator[Harness]:
    async with stack.started(PLATFORM_FEE_BPS=FEE_BPS) as running:
        yield running


class SimulatedCrash(Exception):
    """Fault injection: stands in for the process dying at this point."""


async def released_payment(harness: Harness, amount: int) -> str:
    return await released(harness, f"order-{uuid.uuid4().hex[:8]}", amount)


async def request_refund(harness: Harness, payment_id: str, amount_minor: int) -> dict[str, Any]:
    response = await harness.client.post(
        "/api/v1/refunds", json={"payment_id": payment_id, "amount_minor": amount_minor}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    if body["status"] == "pending_approval":
        approved = await harness.client.post(f"/api/v1/refunds/{body['refund_id']}/approve")
        assert approved.status_code == 200, approved.text
    return body


async def process(harness: Harness, refund_id: str, status: int = 200) -> dict[str, Any]:
    response = await harness.client.post(f"/api/v1/refunds/{refund_id}/process")
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def refunded(harness: Harness, payment_id: str, amount_minor: int) -> dict[str, Any]:
    """Request and process one refund; it must succeed."""
    requested = await request_refund(harness, payment_id, amount_minor)
    done = await process(harness, requested["refund_id"])
    assert done["status"] == "succeeded", done
    return done


async def books(harness: Harness, payment_id: str) -> dict[str, tuple[int, int]]:
    """(amount, payment count) of every account a released payment touches."""
    names = (RUNNER, CUSTOMER, "platform_fees", "refunds", f"escrow:{payment_id}")
    return {name: await balance(harness, name) for name in names}


def given_back(payment_id: str, *, fee: int) -> dict[str, tuple[int, int]]:
    """The books once all of a released payment is back with the customer: runner, customer
    and escrow at zero; the platform's fee paid out of its refunds account."""
    return {RUNNER: (0, 0), CUSTOMER: (0, 0), "platform_fees": (fee, 0), "refunds": (-fee, 0),
            f"escrow:{payment_id}": (0, 0)}  # fmt: skip


async def reversed_at_provider(harness: Harness, payment_id: str) -> int:
    await harness.drain()
    (transfer,) = (await by_payment(harness.runtime, "transfer"))[payment_id]
    return int(transfer["amount_reversed"])


async def provider_refunds(harness: Harness, payment_id: str) -> list[int]:
    objects = (await by_payment(harness.runtime, "refund")).get(payment_id, [])
    return sorted(int(obj["amount"]) for obj in objects)


async def causes(harness: Harness, payment_id: str) -> list[str]:
    async with harness.runtime.db.read() as session:
        rows = await session.scalars(
            select(LedgerEntry.cause).where(LedgerEntry.payment_id == payment_id)
        )
        return sorted(rows)


async def test_a_partial_refund_after_release_reverses_the_runners_share(
    harness: Harness,
) -> None:
    payment_id = await released_payment(harness, 20000)  # runner 18000, platform 2000
    done = await refunded(harness, payment_id, 5000)
    assert (done["transfer_reversal_minor"], done["fee_refund_minor"]) == (4500, 500)
    assert done["transfer_reversal_id"].startswith("trr_")
    assert await books(harness, payment_id) == {
        RUNNER: (13500, 1),
        CUSTOMER: (-15000, 1),
        "platform_fees": (2000, 0),
        "refunds": (-500, 0),
        f"escrow:{payment_id}": (0, 0),
    }
    assert await reversed_at_provider(harness, payment_id) == 4500
    assert await provider_refunds(harness, payment_id) == [5000]
    await assert_ledger_clean(harness)  # after the provider's webhooks too: nothing twice
    events = [e for e in await harness.all_events() if e["type"] == "refund.succeeded"]
    assert len(events) == 1
    assert events[0]["payload"]["refund"]["transfer_reversal_id"] == done["transfer_reversal_id"]
    assert events[0]["payload"]["refund"]["transfer_reversal_minor"] == 4500


async def test_partial_refunds_summing_to_the_capture_reverse_exactly_the_transfer(
    harness: Harness,
) -> None:
    payment_id = await released_payment(harness, 1001)  # runner 901, platform 100
    splits = []
    for amount in (333, 333, 335):
        done = await refunded(harness, payment_id, amount)
        splits.append((done["transfer_reversal_minor"], done["fee_refund_minor"]))
        await assert_ledger_clean(harness)
    # Cumulative: reversed = floor(refunded * 901 / 1001) after each: 299, 599, 901.
    assert splits == [(299, 34), (300, 33), (302, 33)]
    assert await books(harness, payment_id) == given_back(payment_id, fee=100)
    assert await reversed_at_provider(harness, payment_id) == 901
    assert await provider_refunds(harness, payment_id) == [333, 333, 335]
    over = await harness.client.post(
        "/api/v1/refunds", json={"payment_id": payment_id, "amount_minor": 1}
    )
    assert over.status_code == 400 and over.json()["field"] == "amount"


async def test_a_full_refund_after_release_leaves_the_books_as_a_revert_does(
    harness: Harness,
) -> None:
    refunded_id = await released_payment(harness, 2500)
    reverted_id = await released_payment(harness, 2500)
    before = await books(harness, refunded_id)
    await refunded(harness, refunded_id, 2500)
    after_refund = await books(harness, refunded_id)
    await reverted(harness, reverted_id)
    after_revert = await books(harness, reverted_id)

    def moved(start: dict[str, tuple[int, int]], end: dict[str, tuple[int, int]]) -> list[Any]:
        return [
            (end[name][0] - start[name][0], end[name][1] - start[name][1])
            for name in (RUNNER, CUSTOMER, "platform_fees", "refunds")
        ]

    assert moved(before, after_refund) == moved(after_refund, after_revert)
    assert moved(before, after_refund) == [(-2250, -1), (2500, -1), (0, 0), (-250, 0)]
    assert after_refund[f"escrow:{refunded_id}"] == after_revert[f"escrow:{reverted_id}"] == (0, 0)
    assert await reversed_at_provider(harness, refunded_id) == 2250
    await assert_ledger_clean(harness)


async def test_a_revert_after_a_partial_refund_returns_only_the_rest(harness: Harness) -> None:
    payment_id = await released_payment(harness, 20000)
    await refunded(harness, payment_id, 5000)
    await reverted(harness, payment_id)
    assert await books(harness, payment_id) == given_back(payment_id, fee=2000)
    assert await reversed_at_provider(harness, payment_id) == 18000
    assert await provider_refunds(harness, payment_id) == [5000, 15000]
    stored = (await harness.client.get(f"/api/v1/payments/{payment_id}")).json()
    assert (stored["status"], stored["amount_refunded"]) == ("REVERTED", 20000)
    await assert_ledger_clean(harness)


async def test_concurrent_refunds_of_a_released_payment_never_exceed_the_capture(
    harness: Harness,
) -> None:
    payment_id = await released_payment(harness, 20000)
    answers = await asyncio.gather(
        *(
            harness.client.post(
                "/api/v1/refunds", json={"payment_id": payment_id, "amount_minor": 5000}
            )
            for _ in range(6)
        )
    )
    assert sorted(answer.status_code for answer in answers) == [201] * 4 + [400] * 2
    accepted = [answer.json()["refund_id"] for answer in answers if answer.status_code == 201]
    results = await asyncio.gather(*(process(harness, refund_id) for refund_id in accepted))
    assert {row["status"] for row in results} == {"succeeded"}
    assert sum(row["transfer_reversal_minor"] for row in results) == 18000
    # Each account counts the payment off once, however the refunds finished.
    assert await books(harness, payment_id) == given_back(payment_id, fee=2000)
    assert await reversed_at_provider(harness, payment_id) == 18000
    assert await provider_refunds(harness, payment_id) == [5000] * 4
    await assert_ledger_clean(harness)


@pytest.mark.parametrize("crash_at", ["before the reversal is recorded", "before the refund"])
async def test_a_crash_between_reversal_and_refund_resumes_when_processed_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    payment_id = await released_payment(harness, 20000)
    requested = await request_refund(harness, payment_id, 5000)
    provider = harness.runtime.provider
    name = "create_transfer_reversal" if crash_at.startswith("before the reversal") else (
        "create_refund"
    )  # fmt: skip
    real = getattr(provider, name)

    async def dies(*args: Any, **kwargs: Any) -> Any:
        if name == "create_transfer_reversal":
            await real(*args, **kwargs)  # the provider reversed; payport never heard back
        raise SimulatedCrash(crash_at)

    monkeypatch.setattr(provider, name, dies)
    with pytest.raises(SimulatedCrash):
        await refunds.process_refund(harness.runtime.db, provider, requested["refund_id"])
    monkeypatch.setattr(provider, name, real)
    async with harness.runtime.db.read() as session:
        stuck = await session.get(Refund, requested["refund_id"])
        assert stuck is not None and stuck.status == "processing"
        assert (stuck.transfer_reversal_id is None) is (name == "create_transfer_reversal")
    await assert_ledger_clean(harness)  # processing: counted, not yet posted; provider ahead

    done = await process(harness, requested["refund_id"])
    assert (done["status"], done["transfer_reversal_minor"]) == ("succeeded", 4500)
    assert await reversed_at_provider(harness, payment_id) == 4500  # repeated with one key
    assert await provider_refunds(harness, payment_id) == [5000]
    assert (await books(harness, payment_id))[RUNNER] == (13500, 1)
    await assert_ledger_clean(harness)


async def test_a_failed_reversal_sends_no_refund_and_posts_nothing(harness: Harness) -> None:
    payment_id = await released_payment(harness, 20000)
    requested = await request_refund(harness, payment_id, 5000)
    transfer_id = (await harness.client.get(f"/api/v1/payments/{payment_id}")).json()["transfer_id"]
    # The whole transfer is taken back at the provider directly (the dashboard), unseen yet.
    await harness.runtime.provider.create_transfer_reversal(
        transfer_id, amount_minor=None, idempotency_key="dashboard-reversal"
    )
    before = await causes(harness, payment_id)
    failed = await process(harness, requested["refund_id"], status=402)
    assert failed["status"] == "failed" and failed["failure_code"], failed
    assert failed["transfer_reversal_id"] is None and failed["transfer_reversal_minor"] == 0
    assert await causes(harness, payment_id) == before
    assert await provider_refunds(harness, payment_id) == []
    stored = (await harness.client.get(f"/api/v1/payments/{payment_id}")).json()
    assert stored["amount_refunded"] == 0
    await harness.drain()  # the outside reversal's webhook is recorded now
    assert (await books(harness, payment_id))[RUNNER] == (0, 0)
    await assert_ledger_clean(harness)
    types = [event["type"] for event in await harness.all_events()]
    assert types.count("refund.failed") == 1 and "refund.succeeded" not in types


async def test_a_revert_waits_for_a_processing_refund_then_returns_the_rest(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    payment_id = await released_payment(harness, 20000)
    requested = await request_refund(harness, payment_id, 5000)
    provider = harness.runtime.provider
    real = provider.create_refund

    async def dies(*args: Any, **kwargs: Any) -> Any:
        raise SimulatedCrash("died after the reversal, before the refund")

    monkeypatch.setattr(provider, "create_refund", dies)
    with pytest.raises(SimulatedCrash):
        await refunds.process_refund(harness.runtime.db, provider, requested["refund_id"])
    monkeypatch.setattr(provider, "create_refund", real)
    refused = await run(harness, "revert_payment", {"payment_id": payment_id})
    assert refused["type"] == "payment.failed", refused
    assert refused["payload"]["error"] == "INVALID_STATUS"
    assert (await process(harness, requested["refund_id"]))["status"] == "succeeded"
    await reverted(harness, payment_id)
    assert (await books(harness, payment_id))[RUNNER] == (0, 0)
    assert await reversed_at_provider(harness, payment_id) == 18000
    assert await provider_refunds(harness, payment_id) == [5000, 15000]
    await assert_ledger_clean(harness)


async def test_refunding_the_rest_after_an_outside_refund_leaves_the_books_as_a_revert_does(
    harness: Harness,
) -> None:
    payment_id = await released_payment(harness, 20000)
    intent_id = (await harness.client.get(f"/api/v1/payments/{payment_id}")).json()[
        "payment_intent_id"
    ]
    await harness.runtime.provider.create_refund(
        payment_intent=intent_id,
        amount_minor=5000,
        reason="requested_by_customer",
        idempotency_key="dashboard-refund",
    )
    await harness.drain()  # recorded as an outside refund: escrow fronted it
    assert (await books(harness, payment_id))[f"escrow:{payment_id}"] == (-5000, 0)
    done = await refunded(harness, payment_id, 15000)
    # The runner's and the fee's shares of everything refunded, the outside 5000 included.
    assert (done["transfer_reversal_minor"], done["fee_refund_minor"]) == (18000, 2000)
    assert await books(harness, payment_id) == given_back(payment_id, fee=2000)
    assert await reversed_at_provider(harness, payment_id) == 18000
    await assert_ledger_clean(harness)


async def test_outside_partial_movements_then_a_revert_count_the_payment_off_once(
    harness: Harness,
) -> None:
    payment_id = await released_payment(harness, 20000)
    stored = (await harness.client.get(f"/api/v1/payments/{payment_id}")).json()
    provider = harness.runtime.provider
    await provider.create_transfer_reversal(
        stored["transfer_id"], amount_minor=700, idempotency_key="dashboard-reversal"
    )
    await provider.create_refund(
        payment_intent=stored["payment_intent_id"],
        amount_minor=1000,
        reason="requested_by_customer",
        idempotency_key="dashboard-refund",
    )
    await harness.drain()  # both recorded as outside movements, neither the last of it
    assert (await books(harness, payment_id))[RUNNER] == (17300, 1)
    assert (await books(harness, payment_id))[CUSTOMER] == (-19000, 1)
    await reverted(harness, payment_id)
    assert await books(harness, payment_id) == given_back(payment_id, fee=2000)
    await assert_ledger_clean(harness)
