"""StripeProvider against localstripe over real HTTP: every port method, its errors, its keys.

What localstripe cannot show (decline codes, `error.payment_intent` on a decline,
3-D Secure redirects) is checked on Stripe-shaped payloads in test_stripe_errors.py.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import stripe
from bench.server import free_port
from pydantic import SecretStr

from payport.config import load_settings
from payport.errors import ProviderUnavailable
from payport.money import Money
from payport.providers.base import (
    PI_CANCELED,
    PI_REQUIRES_ACTION,
    PI_REQUIRES_CAPTURE,
    PI_SUCCEEDED,
    AuthorizeRequest,
    IntentView,
    ProviderAuthenticationError,
    ProviderCardError,
    ProviderIdempotencyError,
    ProviderInvalidRequest,
    ProviderTransientError,
)
from payport.providers.errors import to_payport_error, with_retries
from payport.providers.stripe import StripeProvider, build_stripe_provider
from tests.stripe_provider.conftest import SECRET_KEY

# The SDK hands httpx its form body as `data=`, which httpx deprecates; not payport's call.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

METADATA = {"order_id": "order-1", "payment_id": "pay_1"}
DECLINING_CARD = "pm_card_chargeCustomerFail"  # localstripe's card that attaches, then declines
AUTHENTICATION_CARD = "4000002760003184"  # 3-D Secure on every payment


def request(**overrides: Any) -> AuthorizeRequest:
    fields: dict[str, Any] = {
        "amount": Money(2500, "usd"),
        "payment_method": "pm_card_visa",
        "description": "Two bubble teas",
        "metadata": METADATA,
    }
    return AuthorizeRequest(**(fields | overrides))


async def authorized(provider: StripeProvider, key: str = "authorize:pay_1") -> IntentView:
    intent = await provider.create_payment_intent(request(), idempotency_key=key)
    assert intent.status == PI_REQUIRES_CAPTURE
    return intent


async def captured(provider: StripeProvider) -> IntentView:
    intent = await authorized(provider)
    return await provider.capture_payment_intent(
        intent.id, amount_minor=None, idempotency_key="capture:pay_1"
    )


async def intents_in_localstripe(client: stripe.StripeClient) -> list[dict[str, Any]]:
    listing = await client.v1.payment_intents.list_async({"limit": 100})
    return [intent.to_dict() for intent in listing.data]


# --- authorize ------------------------------------------------------------------------------


async def test_authorize_holds_the_amount_with_manual_capture(provider: StripeProvider) -> None:
    intent = await authorized(provider)
    assert intent.id.startswith("pi_")
    assert (intent.amount_minor, intent.currency) == (2500, "usd")
    assert intent.amount_capturable == 2500
    assert intent.amount_received == 0
    assert intent.latest_charge is not None and intent.latest_charge.startswith("ch_")
    assert intent.metadata == METADATA
    assert intent.next_action_url is None
    assert intent.raw["capture_method"] == "manual"
    assert intent.raw["description"] == "Two bubble teas"


async def test_raw_is_a_plain_dict_all_the_way_down(provider: StripeProvider) -> None:
    intent = await authorized(provider)
    assert type(intent.raw) is dict
    assert type(intent.raw["metadata"]) is dict
    assert not isinstance(intent.raw["latest_charge"], stripe.StripeObject)


async def test_authorize_for_a_customer_with_automatic_capture(
    provider: StripeProvider, stripe_client: stripe.StripeClient
) -> None:
    customer = await stripe_client.v1.customers.create_async({"email": "alice@example.com"})
    intent = await provider.create_payment_intent(
        request(customer=customer.id, capture_manually=False), idempotency_key="authorize:pay_1"
    )
    assert intent.status == PI_SUCCEEDED
    assert intent.amount_received == 2500
    assert intent.raw["customer"] == customer.id
    assert intent.raw["capture_method"] == "automatic"


async def test_authorize_off_session(provider: StripeProvider) -> None:
    intent = await provider.create_payment_intent(
        request(off_session=True), idempotency_key="authorize:pay_1"
    )
    assert intent.status == PI_REQUIRES_CAPTURE


async def test_authorize_with_a_return_url_allows_redirects(provider: StripeProvider) -> None:
    """The compat layer refuses redirects without a return_url, as Stripe does, so both
    variants passing shows payport sends the right pair."""
    intent = await provider.create_payment_intent(
        request(return_url="https://shop.example/back"), idempotency_key="authorize:pay_1"
    )
    assert intent.status == PI_REQUIRES_CAPTURE


async def test_redirects_without_a_return_url_are_refused(
    stripe_client: stripe.StripeClient,
) -> None:
    """The check the test above relies on (tests/localstripe_compat.py, 3.)."""
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await stripe_client.v1.payment_intents.create_async(
            {
                "amount": 2500,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "automatic_payment_methods": {"enabled": True},
            }
        )
    assert caught.value.param == "return_url"


async def test_declined_card_raises_card_error(provider: StripeProvider) -> None:
    with pytest.raises(ProviderCardError) as caught:
        await provider.create_payment_intent(
            request(payment_method=DECLINING_CARD), idempotency_key="authorize:pay_1"
        )
    error = caught.value
    assert error.http_status == 402
    assert error.code == "card_declined"
    assert error.message == "Your card was declined."
    # localstripe sends neither a decline_code nor the intent (see test_stripe_errors.py).
    assert error.decline_code is None
    assert to_payport_error(error).code == "STRIPE_CARD_ERROR"


async def test_card_needing_authentication_waits_for_the_customer(
    provider: StripeProvider, stripe_client: stripe.StripeClient
) -> None:
    method = await stripe_client.v1.payment_methods.create_async(
        {
            "type": "card",
            "card": {
                "number": AUTHENTICATION_CARD,
                "exp_month": 12,
                "exp_year": 2034,
                "cvc": "123",
            },
        }
    )
    intent = await provider.create_payment_intent(
        request(payment_method=method.id), idempotency_key="authorize:pay_1"
    )
    assert intent.status == PI_REQUIRES_ACTION
    assert intent.amount_capturable == 0
    # localstripe answers `use_stripe_sdk`, which has no page to send the customer to.
    assert intent.raw["next_action"]["type"] == "use_stripe_sdk"
    assert intent.next_action_url is None


async def test_unknown_payment_method_is_an_invalid_request(provider: StripeProvider) -> None:
    with pytest.raises(ProviderInvalidRequest) as caught:
        await provider.create_payment_intent(
            request(payment_method="pm_unknown"), idempotency_key="authorize:pay_1"
        )
    assert caught.value.http_status == 404


# --- retrieve -------------------------------------------------------------------------------


async def test_retrieve_returns_the_current_state(provider: StripeProvider) -> None:
    intent = await authorized(provider)
    await provider.capture_payment_intent(intent.id, amount_minor=None, idempotency_key="c:1")
    current = await provider.retrieve_payment_intent(intent.id)
    assert current.id == intent.id
    assert current.status == PI_SUCCEEDED
    assert current.amount_received == 2500


async def test_retrieve_unknown_intent_is_not_found(provider: StripeProvider) -> None:
    with pytest.raises(ProviderInvalidRequest) as caught:
        await provider.retrieve_payment_intent("pi_missing")
    assert caught.value.http_status == 404
    assert to_payport_error(caught.value).code == "INVALID_PAYLOAD"


# --- capture --------------------------------------------------------------------------------


async def test_capture_takes_the_whole_hold(provider: StripeProvider) -> None:
    intent = await captured(provider)
    assert intent.status == PI_SUCCEEDED
    assert intent.amount_received == 2500
    assert intent.amount_capturable == 0


async def test_partial_capture_takes_only_the_amount(provider: StripeProvider) -> None:
    intent = await authorized(provider)
    partial = await provider.capture_payment_intent(
        intent.id, amount_minor=1500, idempotency_key="capture:pay_1"
    )
    assert partial.status == PI_SUCCEEDED
    assert partial.amount_received == 1500


async def test_capturing_twice_reports_the_captured_intent(provider: StripeProvider) -> None:
    """payport's release treats this answer as success after a crash (release.py)."""
    intent = await captured(provider)
    with pytest.raises(ProviderInvalidRequest) as caught:
        await provider.capture_payment_intent(
            intent.id, amount_minor=None, idempotency_key="capture:again"
        )
    assert caught.value.code == "payment_intent_unexpected_state"
    assert caught.value.payment_intent is not None
    assert caught.value.payment_intent.status == PI_SUCCEEDED
    assert to_payport_error(caught.value).code == "INVALID_STATUS"


# --- cancel ---------------------------------------------------------------------------------


async def test_cancel_releases_the_hold_with_its_reason(provider: StripeProvider) -> None:
    intent = await authorized(provider)
    canceled = await provider.cancel_payment_intent(
        intent.id, reason="abandoned", idempotency_key="cancel:pay_1"
    )
    assert canceled.status == PI_CANCELED
    assert canceled.cancellation_reason == "abandoned"
    assert canceled.amount_capturable == 0


async def test_cancelling_twice_reports_the_canceled_intent(provider: StripeProvider) -> None:
    intent = await authorized(provider)
    await provider.cancel_payment_intent(
        intent.id, reason="requested_by_customer", idempotency_key="cancel:pay_1"
    )
    with pytest.raises(ProviderInvalidRequest) as caught:
        await provider.cancel_payment_intent(
            intent.id, reason="requested_by_customer", idempotency_key="cancel:again"
        )
    assert caught.value.payment_intent is not None
    assert caught.value.payment_intent.status == PI_CANCELED


async def test_cancel_refuses_a_reason_stripe_would_refuse(provider: StripeProvider) -> None:
    intent = await authorized(provider)
    with pytest.raises(ProviderInvalidRequest) as caught:
        await provider.cancel_payment_intent(
            intent.id, reason="customer_changed_mind", idempotency_key="cancel:pay_1"
        )
    assert caught.value.param == "cancellation_reason"
    assert (await provider.retrieve_payment_intent(intent.id)).status == PI_REQUIRES_CAPTURE


# --- refund ---------------------------------------------------------------------------------


async def test_refund_returns_the_captured_money(provider: StripeProvider) -> None:
    intent = await captured(provider)
    refund = await provider.create_refund(
        payment_intent=intent.id,
        amount_minor=None,
        reason="requested_by_customer",
        idempotency_key="refund:pay_1",
        metadata={"payment_id": "pay_1"},
    )
    assert refund.id.startswith("re_")
    assert refund.status == "succeeded"
    assert (refund.amount_minor, refund.currency) == (2500, "usd")
    assert refund.payment_intent == intent.id
    assert refund.charge == intent.latest_charge
    assert refund.reason == "requested_by_customer"
    assert refund.raw["metadata"] == {"payment_id": "pay_1"}


async def test_partial_refund(provider: StripeProvider) -> None:
    intent = await captured(provider)
    refund = await provider.create_refund(
        payment_intent=intent.id, amount_minor=1000, reason="duplicate", idempotency_key="r:1"
    )
    assert refund.amount_minor == 1000


async def test_refund_refuses_a_reason_stripe_would_refuse(provider: StripeProvider) -> None:
    intent = await captured(provider)
    with pytest.raises(ProviderInvalidRequest) as caught:
        await provider.create_refund(
            payment_intent=intent.id, amount_minor=None, reason="abandoned", idempotency_key="r:1"
        )
    assert caught.value.param == "reason"


# --- transfers (localstripe has none; tests/localstripe_compat.py adds them) --------------


async def test_transfer_and_reversal(provider: StripeProvider) -> None:
    intent = await captured(provider)
    transfer = await provider.create_transfer(
        amount=Money(2250, "usd"),
        destination="acct_bob",
        transfer_group="order-1",
        source_transaction=intent.latest_charge,
        idempotency_key="transfer:pay_1",
        metadata=METADATA,
    )
    assert transfer.id.startswith("tr_")
    assert (transfer.amount_minor, transfer.currency) == (2250, "usd")
    assert transfer.destination == "acct_bob"
    assert transfer.transfer_group == "order-1"
    assert transfer.source_transaction == intent.latest_charge
    assert (transfer.amount_reversed, transfer.reversed) == (0, False)
    assert transfer.raw["metadata"] == METADATA

    reversal = await provider.create_transfer_reversal(
        transfer.id, amount_minor=None, idempotency_key="reverse_transfer:pay_1"
    )
    assert reversal.id.startswith("trr_")
    assert (reversal.transfer, reversal.amount_minor) == (transfer.id, 2250)

    after = await provider.retrieve_transfer(transfer.id)
    assert (after.amount_reversed, after.reversed) == (2250, True)
    with pytest.raises(ProviderInvalidRequest):
        await provider.create_transfer_reversal(
            transfer.id, amount_minor=None, idempotency_key="reverse_transfer:again"
        )


async def test_partial_reversal(provider: StripeProvider) -> None:
    transfer = await provider.create_transfer(
        amount=Money(2000, "usd"),
        destination="acct_bob",
        transfer_group=None,
        source_transaction=None,
        idempotency_key="transfer:pay_1",
    )
    await provider.create_transfer_reversal(transfer.id, amount_minor=500, idempotency_key="v:1")
    after = await provider.retrieve_transfer(transfer.id)
    assert (after.amount_reversed, after.reversed) == (500, False)


async def test_retrieve_unknown_transfer_is_not_found(provider: StripeProvider) -> None:
    with pytest.raises(ProviderInvalidRequest) as caught:
        await provider.retrieve_transfer("tr_missing")
    assert caught.value.http_status == 404


# --- idempotency keys -----------------------------------------------------------------------


async def test_same_key_replays_the_first_answer(
    provider: StripeProvider, stripe_client: stripe.StripeClient
) -> None:
    first = await provider.create_payment_intent(request(), idempotency_key="authorize:pay_1")
    again = await provider.create_payment_intent(request(), idempotency_key="authorize:pay_1")
    assert again.id == first.id
    assert len(await intents_in_localstripe(stripe_client)) == 1


async def test_another_key_is_another_request(
    provider: StripeProvider, stripe_client: stripe.StripeClient
) -> None:
    first = await provider.create_payment_intent(request(), idempotency_key="authorize:pay_1")
    other = await provider.create_payment_intent(request(), idempotency_key="authorize:pay_2")
    assert other.id != first.id
    assert len(await intents_in_localstripe(stripe_client)) == 2


async def test_same_key_with_other_parameters_is_an_idempotency_error(
    provider: StripeProvider,
) -> None:
    await provider.create_payment_intent(request(), idempotency_key="authorize:pay_1")
    with pytest.raises(ProviderIdempotencyError) as caught:
        await provider.create_payment_intent(
            request(amount=Money(3000, "usd")), idempotency_key="authorize:pay_1"
        )
    assert "authorize:pay_1" in caught.value.message


async def test_capture_key_replays_instead_of_failing(provider: StripeProvider) -> None:
    """A capture repeated after a crash, with its key, is answered, not refused."""
    intent = await authorized(provider)
    first = await provider.capture_payment_intent(
        intent.id, amount_minor=None, idempotency_key="capture:pay_1"
    )
    again = await provider.capture_payment_intent(
        intent.id, amount_minor=None, idempotency_key="capture:pay_1"
    )
    assert again.status == first.status == PI_SUCCEEDED


async def test_transfer_key_makes_one_transfer(provider: StripeProvider) -> None:
    calls = [
        provider.create_transfer(
            amount=Money(2000, "usd"),
            destination="acct_bob",
            transfer_group="order-1",
            source_transaction=None,
            idempotency_key="transfer:pay_1",
        )
        for _ in range(2)
    ]
    first, again = [await call for call in calls]
    assert again.id == first.id


# --- failures that are not Stripe's answer --------------------------------------------------


async def test_unreachable_stripe_is_transient_after_the_sdk_retries() -> None:
    provider = StripeProvider(
        SecretStr(SECRET_KEY),
        api_base=f"http://127.0.0.1:{free_port()}",
        timeout_s=2.0,
        max_network_retries=1,
    )
    started = time.monotonic()
    try:
        with pytest.raises(ProviderTransientError) as caught:
            await provider.retrieve_payment_intent("pi_123")
    finally:
        await provider.aclose()
    assert time.monotonic() - started >= 0.5  # the SDK waits at least 0.5 s before a retry
    assert to_payport_error(caught.value).code == ProviderUnavailable.code


async def test_rejected_key_is_not_retried(stripe_url: str) -> None:
    """localstripe refuses keys not starting with sk_, as Stripe refuses unknown keys."""
    provider = StripeProvider(SecretStr("rk_test_notAcceptedHere"), api_base=stripe_url)
    attempts = 0

    async def call() -> IntentView:
        nonlocal attempts
        attempts += 1
        return await provider.retrieve_payment_intent("pi_123")

    try:
        with pytest.raises(ProviderAuthenticationError) as caught:
            await with_retries(call, base_delay_s=0.0)
    finally:
        await provider.aclose()
    assert attempts == 1
    assert caught.value.http_status == 401
    assert "STRIPE_SECRET_KEY" in caught.value.message
    assert to_payport_error(caught.value).code == ProviderUnavailable.code


async def test_the_secret_key_never_leaks(
    stripe_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "rk_live_payportNeverLogThis0123456789"
    caplog.set_level(logging.DEBUG)
    rejected = StripeProvider(SecretStr(secret), api_base=stripe_url, max_network_retries=1)
    unreachable = StripeProvider(
        SecretStr(secret), api_base=f"http://127.0.0.1:{free_port()}", max_network_retries=1
    )
    errors: list[Exception] = []
    try:
        for provider in (rejected, unreachable):
            with pytest.raises((ProviderAuthenticationError, ProviderTransientError)) as caught:
                await provider.create_payment_intent(request(), idempotency_key="authorize:k")
            errors.append(caught.value)
        exposed = [repr(rejected), repr(unreachable), caplog.text]
    finally:
        await rejected.aclose()
        await unreachable.aclose()
    assert isinstance(errors[0], ProviderAuthenticationError)
    assert isinstance(errors[1], ProviderTransientError)
    for error in errors:
        exposed += [str(error), repr(error), repr(error.args), repr(vars(error))]
        assert error.__cause__ is None and error.__suppress_context__
    assert "stripe call failed" in caplog.text  # the failures were logged, just not the key
    for text in exposed:
        assert secret not in text
        assert "payportNeverLogThis" not in text


async def test_settings_configure_the_provider(stripe_url: str) -> None:
    settings = load_settings(
        PAYPORT_PROVIDER="stripe",
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_API_BASE=stripe_url,
        PAYPORT_STRIPE_TIMEOUT_S="5",
        PAYPORT_STRIPE_MAX_NETWORK_RETRIES="0",
    )
    provider = build_stripe_provider(settings)
    try:
        assert provider.name == "stripe"
        assert stripe_url in repr(provider)
        intent = await provider.create_payment_intent(request(), idempotency_key="authorize:s")
        assert intent.status == PI_REQUIRES_CAPTURE
    finally:
        await provider.aclose()


# --- finding an intent by payment (after the idempotency window) ------------------------------


async def test_find_payment_intent_for_payment_searches_metadata(
    provider: StripeProvider,
) -> None:
    made = await authorized(provider)
    quoted = await provider.create_payment_intent(
        request(metadata={"order_id": "order-2", "payment_id": "it's 'quoted'"}),
        idempotency_key="authorize:pay_2",
    )

    found = await provider.find_payment_intent_for_payment("pay_1")

    assert found is not None
    assert (found.id, found.status, found.metadata["payment_id"]) == (
        made.id,
        PI_REQUIRES_CAPTURE,
        "pay_1",
    )
    assert await provider.find_payment_intent_for_payment("pay_never") is None
    found_quoted = await provider.find_payment_intent_for_payment("it's 'quoted'")
    assert found_quoted is not None and found_quoted.id == quoted.id
