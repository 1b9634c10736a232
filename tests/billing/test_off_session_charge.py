"""The sandbox's off-session charge, and a renewal charge repeated after a crash."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from payport.billing.renewals import BillingEngine
from payport.money import Money
from payport.providers.base import (
    PI_SUCCEEDED,
    OffSessionCharge,
    ProviderCardError,
)
from payport.providers.sandbox import SandboxProvider
from payport.providers.sandbox.models import SandboxObject
from tests.billing.helpers import START, Billing
from tests.harness import Harness


def renewal(payment_method: str) -> OffSessionCharge:
    return OffSessionCharge(amount=Money(3000, "usd"), payment_method=payment_method)


async def test_sandbox_charges_off_session_with_automatic_capture(harness: Harness) -> None:
    provider = harness.runtime.provider
    assert isinstance(provider, SandboxProvider)
    intent = await provider.charge_off_session(renewal("pm_card_visa"), idempotency_key="k1")
    assert (intent.status, intent.amount_received) == (PI_SUCCEEDED, 3000)
    assert intent.raw["capture_method"] == "automatic"
    again = await provider.charge_off_session(renewal("pm_card_visa"), idempotency_key="k1")
    assert again.id == intent.id  # same key: the first answer, no second charge

    with pytest.raises(ProviderCardError) as needs_3ds:
        await provider.charge_off_session(
            renewal("pm_card_authenticationRequired"), idempotency_key="k2"
        )
    assert needs_3ds.value.code == "authentication_required"


async def intents_for(harness: Harness) -> int:
    async with harness.runtime.db.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(SandboxObject)
            .where(SandboxObject.object_type == "payment_intent")
        )
    return int(count or 0)


async def test_a_renewal_cut_short_after_recording_its_attempt_charges_once(
    billing: Billing,
) -> None:
    """Simulates a crash between recording the attempt and applying the provider's answer."""
    plan = await billing.plan(price_minor=3000)
    clock = await billing.clock()
    sub_id = (await billing.subscribe(plan["plan_id"], test_clock=clock))["subscription_id"]
    engine: BillingEngine = billing.harness.runtime.billing
    renewal_at = START + timedelta(days=31)
    assert await engine._decide(sub_id, renewal_at) is not None  # the renewal invoice
    charge = await engine._decide(sub_id, renewal_at)  # its attempt, recorded...
    assert charge is not None
    await engine._call_provider(charge)  # type: ignore[arg-type]  # ...charged, then "crash"
    assert await intents_for(billing.harness) == 2

    await billing.advance(clock, renewal_at)  # the next run resumes the pending attempt
    invoices = await billing.invoices(sub_id)
    assert [i["status"] for i in invoices] == ["paid", "paid"]
    assert [len(i["attempts"]) for i in invoices] == [1, 1]
    assert await intents_for(billing.harness) == 2  # replayed by its key, not charged again
    assert await billing.balance("customer:user_ada") == -6000
