"""The port's off-session charge (billing renewals) on Stripe, against localstripe."""

from __future__ import annotations

import pytest
import stripe

from payport.money import Money
from payport.providers.base import PI_SUCCEEDED, OffSessionCharge, ProviderCardError
from payport.providers.stripe import StripeProvider
from payport.providers.stripe.provider import payment_intent_params

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


def renewal(payment_method: str, customer: str | None = None) -> OffSessionCharge:
    return OffSessionCharge(
        amount=Money(3000, "usd"),
        payment_method=payment_method,
        customer=customer,
        description="Invoice INV-2026-000002",
        metadata={"invoice_id": "in_1", "attempt": "1"},
    )


def test_the_charge_asks_stripe_for_off_session_automatic_capture() -> None:
    params = payment_intent_params(renewal("pm_card_visa", "cus_1").as_authorize_request())
    assert params["confirm"] is True
    assert params.get("off_session") is True
    assert params["capture_method"] == "automatic"
    assert params["customer"] == "cus_1"


async def test_a_saved_card_is_charged_and_captured(
    provider: StripeProvider, stripe_client: stripe.StripeClient
) -> None:
    customer = await stripe_client.v1.customers.create_async({"email": "ada@example.com"})
    intent = await provider.charge_off_session(
        renewal("pm_card_visa", customer.id), idempotency_key="invoice:in_1:1"
    )
    assert intent.status == PI_SUCCEEDED
    assert intent.amount_received == 3000
    assert intent.raw["customer"] == customer.id
    assert intent.metadata["invoice_id"] == "in_1"


async def test_a_declining_saved_card_raises_a_card_error(provider: StripeProvider) -> None:
    with pytest.raises(ProviderCardError) as caught:
        await provider.charge_off_session(
            renewal("pm_card_chargeCustomerFail"), idempotency_key="invoice:in_1:2"
        )
    assert caught.value.code == "card_declined"
