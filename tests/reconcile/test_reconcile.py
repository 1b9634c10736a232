"""Reconcile heals every state a crash can leave, and a second run finds nothing to do.

The crashes are injected exactly as in tests/integration/test_crash_recovery.py
(named fault injection, the one place this suite replaces real code): the
command runs once, dies at the named point, and is never run again, as if
its message were lost with the process. Webhooks are not applied until after
reconcile, as if they were late: the sandbox delivers its queue in the drain,
and localstripe's deliveries, stored at once, are processed only then.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from payport.ledger.check import check
from payport.ledger.models import LedgerEntry
from payport.messaging.envelope import Envelope
from payport.payments import authorize, release, revert, service
from payport.payments.reconcile import HeldBatch, reconcile
from tests.harness import Harness, nested_authorize
from tests.integration.test_crash_recovery import SimulatedCrash, crash_once
from tests.provider_truth import by_payment
from tests.webhooks.helpers import RELEASE_TO, released

HANDLERS = {
    "authorize_payment": authorize.authorize,
    "release_payment": release.release,
    "revert_payment": revert.revert,
}
NOW = timedelta(0)


async def run_once(harness: Harness, kind: str, payload: dict[str, Any], *, crash: bool) -> str:
    """Run a command in this process only, as the process that then crashed ran it."""
    correlation_id = str(uuid.uuid4())
    envelope = Envelope(kind, correlation_id, "2025-03-31T10:15:30", payload)
    if crash:
        with pytest.raises(SimulatedCrash):
            await HANDLERS[kind](harness.runtime.ctx, envelope, None)
    else:
        await HANDLERS[kind](harness.runtime.ctx, envelope, None)
    return correlation_id


async def status(harness: Harness, order_id: str) -> str:
    return str((await harness.payment_by_order(order_id))["status"])


async def test_reconcile_heals_every_state_a_crash_leaves(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = harness.runtime.provider
    to_release = (await harness.authorize("order-half-release"))["payload"]["payment_id"]
    to_cancel = (await harness.authorize("order-half-cancel"))["payload"]["payment_id"]
    to_refund = await released(harness, "order-half-refund")
    cids: dict[str, str] = {}

    crash_once(monkeypatch, service, "apply_intent")  # provider answered, answer not recorded
    cids["lost-answer"] = await run_once(
        harness, "authorize_payment", nested_authorize("order-lost-answer"), crash=True
    )
    crash_once(monkeypatch, provider, "create_payment_intent")  # died before asking
    cids["never-asked"] = await run_once(
        harness, "authorize_payment", nested_authorize("order-never-asked"), crash=True
    )
    for order_id in ("order-3ds-approved", "order-3ds-open"):
        three_ds = nested_authorize(order_id, 4000, "pm_card_authenticationRequired")
        cids[order_id] = await run_once(harness, "authorize_payment", three_ds, crash=False)
    approved = await harness.payment_by_order("order-3ds-approved")
    await harness.answer_3ds(approved["paymentIntentId"], approve=True)  # webhook late
    crash_once(monkeypatch, provider, "create_transfer")  # captured, not transferred
    cids["half-release"] = await run_once(
        harness, "release_payment", {"payment_id": to_release, **RELEASE_TO}, crash=True
    )
    crash_once(monkeypatch, provider, "create_refund")  # transfer reversed, not refunded
    cids["half-refund"] = await run_once(
        harness, "revert_payment", {"payment_id": to_refund}, crash=True
    )
    crash_once(monkeypatch, service, "complete_revert")  # canceled, not recorded
    cids["half-cancel"] = await run_once(
        harness, "revert_payment", {"payment_id": to_cancel}, crash=True
    )
    assert await status(harness, "order-lost-answer") == "INITIATING"
    assert await status(harness, "order-half-release") == "AUTHORIZED"

    summary = await reconcile(harness.runtime.ctx, older_than=NOW)
    await harness.drain()  # the late webhooks arrive now, and change nothing twice

    assert summary.as_dict() == {
        "authorized": 3,
        "release_completed": 1,
        "revert_completed": 2,
        "unchanged": 1,
    }
    expected = {
        "order-lost-answer": ("AUTHORIZED", "payment.authorized"),
        "order-never-asked": ("AUTHORIZED", "payment.authorized"),
        "order-3ds-approved": ("AUTHORIZED", "payment.authorized"),
        "order-half-release": ("SUCCEEDED", "payment.released"),
        "order-half-refund": ("REVERTED", "payment.reverted"),
        "order-half-cancel": ("REVERTED", "payment.reverted"),
    }
    cid_of = {
        "order-lost-answer": cids["lost-answer"],
        "order-never-asked": cids["never-asked"],
        "order-3ds-approved": cids["order-3ds-approved"],
        "order-half-release": cids["half-release"],
        "order-half-refund": cids["half-refund"],
        "order-half-cancel": cids["half-cancel"],
    }
    for order_id, (final, event_type) in expected.items():
        assert await status(harness, order_id) == final, order_id
        assert (await harness.outcome(cid_of[order_id]))["type"] == event_type, order_id
    assert await status(harness, "order-3ds-open") == "REQUIRES_ACTION"
    assert [
        e for e in await harness.all_events() if e["correlation_id"] == cids["order-3ds-open"]
    ] == []

    transfers = await by_payment(harness.runtime, "transfer")
    refunds = await by_payment(harness.runtime, "refund")
    intents = await by_payment(harness.runtime, "payment_intent")
    assert len(transfers[to_release]) == 1
    assert transfers[to_release][0]["amount"] == 2500
    assert len(refunds[to_refund]) == 1
    assert all(len(found) == 1 for found in intents.values())

    events_before = await harness.all_events()
    again = await reconcile(harness.runtime.ctx, older_than=NOW)
    await harness.drain()
    assert again.healed == 0
    # the 3-D Secure payment still open, and the three holds now asked about
    assert again.as_dict() == {"unchanged": 4}
    assert await harness.all_events() == events_before


async def test_reconcile_leaves_young_payments_alone(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_once(monkeypatch, service, "apply_intent")
    await run_once(harness, "authorize_payment", nested_authorize("order-young"), crash=True)

    summary = await reconcile(harness.runtime.ctx, older_than=timedelta(minutes=10))

    assert summary.as_dict() == {}
    assert await status(harness, "order-young") == "INITIATING"


async def test_reconcile_applies_what_the_provider_did_to_a_hold_behind_payports_back(
    harness: Harness,
) -> None:
    """No command is open on these AUTHORIZED payments, and their webhooks are late: only
    reconcile's question to the provider finds that one hold was canceled (or expired) and
    another captured outside payport."""
    provider = harness.runtime.provider
    canceled = (await harness.authorize("order-hold-canceled"))["payload"]
    captured = (await harness.authorize("order-hold-captured"))["payload"]
    untouched = (await harness.authorize("order-hold-untouched"))["payload"]["payment_id"]
    await provider.cancel_payment_intent(
        canceled["payment_intent_id"], reason="abandoned", idempotency_key="dashboard:cancel-1"
    )
    await provider.capture_payment_intent(
        captured["payment_intent_id"], amount_minor=None, idempotency_key="dashboard:capture-1"
    )
    events_before = len(await harness.all_events())

    summary = await reconcile(harness.runtime.ctx, older_than=NOW)

    assert summary.as_dict() == {"captured": 1, "failed": 1, "unchanged": 1}
    await harness.drain()  # the late webhooks arrive now, and change nothing twice
    new_events = (await harness.all_events())[events_before:]
    assert [(e["type"], e["payload"]["payment_id"]) for e in new_events] == [
        ("payment.failed", canceled["payment_id"])
    ]
    assert new_events[0]["payload"]["error"] == "PAYMENT_CANCELED"
    assert await status(harness, "order-hold-canceled") == "FAILED"
    assert await status(harness, "order-hold-captured") == "AUTHORIZED"
    assert await status(harness, "order-hold-untouched") == "AUTHORIZED"
    assert await entry_kinds(harness, untouched) == ["authorize"]
    assert await entry_kinds(harness, canceled["payment_id"]) == ["authorize", "cancel"]
    assert await entry_kinds(harness, captured["payment_id"]) == ["authorize", "capture"]
    report = await check(harness.runtime.db, provider=provider)
    assert report.ok, [str(problem) for problem in report.problems]

    # the release of the payment captured outside transfers once, capturing nothing twice
    cid = await harness.command(
        "release_payment", {"payment_id": captured["payment_id"], **RELEASE_TO}
    )
    await harness.drain()
    assert (await harness.outcome(cid))["type"] == "payment.released"
    assert len((await by_payment(harness.runtime, "transfer"))[captured["payment_id"]]) == 1
    assert await entry_kinds(harness, captured["payment_id"]) == [
        "authorize",
        "capture",
        "transfer",
    ]

    events_before = len(await harness.all_events())
    again = await reconcile(harness.runtime.ctx, older_than=NOW)
    await harness.drain()
    assert again.as_dict() == {"unchanged": 1}
    assert len(await harness.all_events()) == events_before
    report = await check(harness.runtime.db, provider=provider)
    assert report.ok, [str(problem) for problem in report.problems]


async def entry_kinds(harness: Harness, payment_id: str) -> list[str]:
    """The ledger entries posted for a payment, in order."""
    async with harness.runtime.db.read() as session:
        kinds = await session.scalars(
            select(LedgerEntry.kind)
            .where(LedgerEntry.payment_id == payment_id)
            .order_by(LedgerEntry.id)
        )
        return list(kinds)


async def test_worker_reconcile_walks_the_holds_a_batch_per_run(harness: Harness) -> None:
    """Each hold costs a provider call, so the worker asks about a batch per run and
    resumes after it, then starts over; every hold is asked about in turn."""
    held = sorted([(await harness.authorize(f"order-batch-{n}"))["payload"]["payment_id"]
                   for n in range(3)])  # fmt: skip

    first = await reconcile(harness.runtime.ctx, older_than=NOW, held=HeldBatch(2))
    second = await reconcile(
        harness.runtime.ctx, older_than=NOW, held=HeldBatch(2, after=first.held_next)
    )
    third = await reconcile(
        harness.runtime.ctx, older_than=NOW, held=HeldBatch(2, after=second.held_next)
    )

    assert (first.as_dict(), first.held_next) == ({"unchanged": 2}, held[1])
    assert (second.as_dict(), second.held_next) == ({"unchanged": 1}, "")  # the rest, then over
    assert (third.as_dict(), third.held_next) == ({"unchanged": 2}, held[1])
