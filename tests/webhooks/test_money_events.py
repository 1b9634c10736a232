"""Refunds, disputes and transfer reversals: recorded when someone else made them, once.

Payport's own refunds and reversals (its revert) produce the same events;
those are recognised and change nothing twice.
"""

from __future__ import annotations

from sqlalchemy import func, select

from payport.ledger.check import check
from payport.ledger.models import LedgerEntry, LedgerPosting
from payport.ledger.repository import balance_of
from tests.harness import Harness
from tests.provider_truth import by_payment
from tests.webhooks import recorded
from tests.webhooks.helpers import of_type, payment, post_event, released, stored_bodies


async def outside_causes(harness: Harness, payment_id: str) -> list[str]:
    """Ledger entries posted for money that moved outside payport."""
    async with harness.runtime.db.read() as session:
        causes = await session.scalars(
            select(LedgerEntry.cause).where(
                LedgerEntry.payment_id == payment_id, LedgerEntry.cause.like("%:outside:%")
            )
        )
        return sorted(causes)


async def outside_total(harness: Harness, payment_id: str) -> int:
    """What those entries moved (each entry's positive side)."""
    async with harness.runtime.db.read() as session:
        total = await session.scalar(
            select(func.coalesce(func.sum(LedgerPosting.amount_minor), 0))
            .join(LedgerEntry, LedgerEntry.id == LedgerPosting.entry_id)
            .where(
                LedgerEntry.payment_id == payment_id,
                LedgerEntry.cause.like("%:outside:%"),
                LedgerPosting.amount_minor > 0,
            )
        )
    return int(total or 0)


# --- charge.refunded ---------------------------------------------------------------------------


async def test_refund_made_outside_payport_is_recorded_once(harness: Harness) -> None:
    payment_id = await released(harness, "order-refund-outside")
    intent_id = (await payment(harness, payment_id)).payment_intent_id or ""
    provider = harness.runtime.provider

    for key, amount in (("dashboard:refund-1", 1000), ("dashboard:refund-2", 500)):
        await provider.create_refund(
            payment_intent=intent_id,
            amount_minor=amount,
            reason="requested_by_customer",
            idempotency_key=key,
        )
    await harness.drain()
    first, _second = await stored_bodies(harness, "charge.refunded")
    await post_event(harness, first | {"id": "evt_refund_late"})  # older total, arrives last
    await harness.drain()

    stored = await payment(harness, payment_id)
    assert stored.amount_refunded_minor == 1500
    assert stored.status == "SUCCEEDED"
    # The two events may be applied in either order; the ledger ends at the latest total.
    causes = await outside_causes(harness, payment_id)
    assert causes[-1] == f"refund:{payment_id}:outside:1500"
    assert await outside_total(harness, payment_id) == 1500


async def test_refund_made_by_a_revert_is_not_recorded_twice(harness: Harness) -> None:
    payment_id = await released(harness, "order-refund-own")
    cid = await harness.command("revert_payment", {"payment_id": payment_id})
    await harness.drain()
    assert (await harness.outcome(cid))["type"] == "payment.reverted"
    [charge_event] = await stored_bodies(harness, "charge.refunded")
    assert charge_event["request"]["idempotency_key"] == f"refund:{payment_id}"
    stray = recorded.charge_refunded(
        charge_event["data"]["object"], event_id="evt_refund_stray", amount_refunded=2500
    )
    await post_event(harness, stray)  # the same refund, as a Stripe-initiated copy
    await harness.drain()

    stored = await payment(harness, payment_id)
    assert stored.amount_refunded_minor == 2500
    assert await outside_causes(harness, payment_id) == []
    assert len(await by_payment(harness.runtime, "refund")) == 1


# --- charge.dispute.created --------------------------------------------------------------------


async def test_dispute_flags_the_payment_and_is_announced_once(harness: Harness) -> None:
    payment_id = await released(harness, "order-disputed")
    stored = await payment(harness, payment_id)
    dispute = recorded.dispute_created(
        event_id="evt_dispute_1",
        dispute_id="dp_1",
        charge_id=stored.charge_id,
        intent_id=stored.payment_intent_id,
        amount=2500,
    )

    assert (await post_event(harness, dispute)).status_code == 200
    assert (await post_event(harness, dispute)).json()["duplicate"] is True
    await post_event(harness, dispute | {"id": "evt_dispute_1_copy"})
    await harness.drain()

    [announced] = of_type(await harness.all_events(), "payment.disputed")
    assert announced["payload"] == {
        "payment_id": payment_id,
        "order_id": "order-disputed",
        "dispute_id": "dp_1",
        "amount": 2500,
        "reason": "fraudulent",
        "status": "needs_response",
    }
    flagged = await payment(harness, payment_id)
    assert (flagged.disputed, flagged.dispute_id, flagged.status) == (True, "dp_1", "SUCCEEDED")


async def test_dispute_found_by_charge_alone_and_a_second_dispute_announced(
    harness: Harness,
) -> None:
    authorized = await harness.authorize("order-disputed-twice")
    payment_id = authorized["payload"]["payment_id"]
    charge_id = (await payment(harness, payment_id)).charge_id
    for number in (1, 2):
        await post_event(
            harness,
            recorded.dispute_created(
                event_id=f"evt_dispute_{number}",
                dispute_id=f"dp_{number}",
                charge_id=charge_id,
                intent_id=None,
                amount=2500,
                reason="product_not_received",
            ),
        )
    await harness.drain()

    announced = of_type(await harness.all_events(), "payment.disputed")
    # each announced once; the two events are applied concurrently, in either order
    assert sorted(e["payload"]["dispute_id"] for e in announced) == ["dp_1", "dp_2"]
    assert (await payment(harness, payment_id)).status == "AUTHORIZED"


async def test_dispute_for_a_charge_payport_does_not_know_is_ignored(harness: Harness) -> None:
    dispute = recorded.dispute_created(
        event_id="evt_dispute_unknown",
        dispute_id="dp_unknown",
        charge_id="ch_unknown",
        intent_id="pi_unknown",
        amount=1000,
    )
    assert (await post_event(harness, dispute)).status_code == 200
    await harness.drain()
    assert of_type(await harness.all_events(), "payment.disputed") == []


# --- transfer.reversed -------------------------------------------------------------------------


async def test_transfer_reversed_outside_payport_is_recorded_from_the_provider_once(
    harness: Harness,
) -> None:
    payment_id = await released(harness, "order-reversed-outside")
    transfer_id = (await payment(harness, payment_id)).transfer_id or ""
    await harness.runtime.provider.create_transfer_reversal(
        transfer_id, amount_minor=700, idempotency_key="dashboard:reversal-1"
    )
    await harness.drain()
    [transfer_event] = await stored_bodies(harness, "transfer.created")
    stale = recorded.transfer_reversed(
        transfer_event["data"]["object"], event_id="evt_reversed_stale", amount_reversed=0
    )
    await post_event(harness, stale)  # an older snapshot, arriving last
    await harness.drain()

    stored = await payment(harness, payment_id)
    assert stored.transfer_reversed_minor == 700
    assert stored.status == "SUCCEEDED"
    assert await outside_causes(harness, payment_id) == [
        f"reverse_transfer:{payment_id}:outside:700"
    ]
    assert await outside_total(harness, payment_id) == 700


async def test_reversal_made_by_a_revert_is_not_recorded_twice(harness: Harness) -> None:
    payment_id = await released(harness, "order-reversed-own")
    cid = await harness.command("revert_payment", {"payment_id": payment_id})
    await harness.drain()
    assert (await harness.outcome(cid))["type"] == "payment.reverted"

    stored = await payment(harness, payment_id)
    assert stored.status == "REVERTED"
    assert stored.transfer_reversed_minor is None
    assert await outside_causes(harness, payment_id) == []


async def test_revert_after_an_outside_partial_reversal_posts_only_the_rest(
    harness: Harness,
) -> None:
    payment_id = await released(harness, "order-reversed-then-reverted")
    stored = await payment(harness, payment_id)
    await harness.runtime.provider.create_transfer_reversal(
        stored.transfer_id or "", amount_minor=700, idempotency_key="dashboard:reversal-2"
    )
    await harness.drain()  # the outside reversal is seen and posted first
    cid = await harness.command("revert_payment", {"payment_id": payment_id})
    await harness.drain()
    assert (await harness.outcome(cid))["type"] == "payment.reverted"

    async with harness.runtime.db.read() as session:
        runner_postings = await session.scalar(
            select(func.coalesce(func.sum(LedgerPosting.amount_minor), 0))
            .join(LedgerEntry, LedgerEntry.id == LedgerPosting.entry_id)
            .where(
                LedgerEntry.payment_id == payment_id,
                LedgerPosting.account == f"runner:{stored.runner_id}",
            )
        )
    # transferred, then 700 back outside, then the rest back by the revert: nothing left
    assert runner_postings == 0
    [transfer] = (await by_payment(harness.runtime, "transfer"))[payment_id]
    assert transfer["amount_reversed"] == stored.transfer_amount_minor
    report = await check(harness.runtime.db, provider=harness.runtime.provider)
    assert report.ok, [str(problem) for problem in report.problems]


async def test_revert_after_an_outside_partial_refund_leaves_nothing_in_escrow(
    harness: Harness,
) -> None:
    payment_id = await released(harness, "order-refunded-then-reverted")
    stored = await payment(harness, payment_id)
    await harness.runtime.provider.create_refund(
        payment_intent=stored.payment_intent_id or "",
        amount_minor=600,
        reason="requested_by_customer",
        idempotency_key="dashboard:refund-3",
    )
    await harness.drain()  # the outside refund is seen and posted first
    cid = await harness.command("revert_payment", {"payment_id": payment_id})
    await harness.drain()
    assert (await harness.outcome(cid))["type"] == "payment.reverted"

    refunds = (await by_payment(harness.runtime, "refund")).get(payment_id, [])
    assert sum(r["amount"] for r in refunds) <= stored.amount_captured_minor
    # 600 outside, then the rest by the revert: the stored total is the provider's total
    reverted = await payment(harness, payment_id)
    assert reverted.amount_refunded_minor == stored.amount_captured_minor == 2500
    response = await harness.client.get(f"/api/v1/payments/{payment_id}")
    assert response.json()["amount_refunded"] == 2500
    report = await check(harness.runtime.db, provider=harness.runtime.provider)
    assert report.ok, [str(problem) for problem in report.problems]


async def test_an_outside_refund_of_a_released_payment_is_owed_back_by_escrow(
    harness: Harness,
) -> None:
    """After the release the platform fronts an outside refund: the payment's escrow goes
    negative by it (what the runner owes back) and `ledger check` accepts that, before any
    revert settles it."""
    payment_id = await released(harness, "order-refunded-after-release")
    stored = await payment(harness, payment_id)
    await harness.runtime.provider.create_refund(
        payment_intent=stored.payment_intent_id or "",
        amount_minor=600,
        reason="requested_by_customer",
        idempotency_key="dashboard:refund-after-release",
    )
    await harness.drain()

    assert (await payment(harness, payment_id)).amount_refunded_minor == 600
    [escrow] = await balance_of(harness.runtime.db, f"escrow:{payment_id}")
    assert escrow.money.amount_minor == -600
    report = await check(harness.runtime.db, provider=harness.runtime.provider)
    assert report.ok, [str(problem) for problem in report.problems]


async def test_an_outside_refund_before_the_release_leaves_the_rest_in_escrow(
    harness: Harness,
) -> None:
    """Captured but not yet transferred: an outside refund comes out of the escrowed money."""
    payment_id = (await harness.authorize("order-captured-then-refunded"))["payload"]["payment_id"]
    captured = await harness.client.post(f"/api/v1/payments/{payment_id}/capture")
    assert captured.status_code == 200, captured.text
    stored = await payment(harness, payment_id)
    await harness.runtime.provider.create_refund(
        payment_intent=stored.payment_intent_id or "",
        amount_minor=600,
        reason="requested_by_customer",
        idempotency_key="dashboard:refund-before-release",
    )
    await harness.drain()

    [escrow] = await balance_of(harness.runtime.db, f"escrow:{payment_id}")
    assert escrow.money.amount_minor == stored.amount_captured_minor - 600
    report = await check(harness.runtime.db, provider=harness.runtime.provider)
    assert report.ok, [str(problem) for problem in report.problems]


async def test_ledger_check_compares_refunds_with_the_provider(harness: Harness) -> None:
    """A refund payport has not heard of yet is a difference `ledger check --provider` names;
    once its webhook is applied (and the payment reverted) the two agree, on the sandbox and
    on Stripe alike."""
    payment_id = await released(harness, "order-refund-unseen")
    stored = await payment(harness, payment_id)
    provider = harness.runtime.provider
    await provider.create_refund(
        payment_intent=stored.payment_intent_id or "",
        amount_minor=600,
        reason="requested_by_customer",
        idempotency_key="dashboard:refund-unseen",
    )

    unseen = await check(harness.runtime.db, provider=provider)
    assert [(p.payment_id, str(p)) for p in unseen.problems] == [
        (payment_id, f"payment {payment_id}: refunded: the ledger has 0, the provider 600")
    ]

    await harness.drain()  # the charge.refunded webhook is applied, then payport reverts
    cid = await harness.command("revert_payment", {"payment_id": payment_id})
    await harness.drain()
    assert (await harness.outcome(cid))["type"] == "payment.reverted"
    report = await check(harness.runtime.db, provider=provider)
    assert report.ok, [str(problem) for problem in report.problems]
