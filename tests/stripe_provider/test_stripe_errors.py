"""Stripe's answers that localstripe cannot give, on Stripe-shaped payloads.

The payloads follow Stripe's documented error and PaymentIntent objects (see
/work/shared/STRIPE_FACTS.md, sections 1 and 2); the exceptions are built with the
SDK's own constructors, as its requestor builds them from a response.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import stripe
from pydantic import SecretStr

from payport.errors import CardError
from payport.providers.base import (
    PI_REQUIRES_ACTION,
    PI_REQUIRES_PAYMENT_METHOD,
    PI_SUCCEEDED,
    ProviderAuthenticationError,
    ProviderCardError,
    ProviderError,
    ProviderIdempotencyError,
    ProviderInvalidRequest,
    ProviderTransientError,
)
from payport.providers.errors import to_payport_error
from payport.providers.stripe.errors import provider_error
from payport.providers.views import intent_view, refund_view, transfer_view

SECRET = SecretStr("sk_test_51HpayportRecordedSecretKey")


def intent(status: str, **fields: Any) -> dict[str, Any]:
    """A PaymentIntent as Stripe returns it (the fields payport reads, and a few more)."""
    return {
        "id": "pi_3QxRecorded",
        "object": "payment_intent",
        "amount": 2500,
        "amount_capturable": 0,
        "amount_received": 0,
        "capture_method": "manual",
        "cancellation_reason": None,
        "client_secret": "pi_3QxRecorded_secret_abc",
        "currency": "usd",
        "latest_charge": "ch_3QxRecorded",
        "last_payment_error": None,
        "livemode": False,
        "metadata": {"order_id": "order-1", "payment_id": "pay_1"},
        "next_action": None,
        "payment_method": "pm_1QxRecorded",
        "status": status,
    } | fields


def error_body(**fields: Any) -> dict[str, Any]:
    return {"error": {"doc_url": "https://docs.stripe.com/error-codes"} | fields}


def card_error(body: dict[str, Any]) -> stripe.CardError:
    fields = body["error"]
    return stripe.CardError(
        fields["message"], fields.get("param"), fields.get("code"),
        http_body=json.dumps(body), http_status=402, json_body=body,
        headers={"request-id": "req_recorded"},
    )  # fmt: skip


def invalid_request(body: dict[str, Any], status: int = 400) -> stripe.InvalidRequestError:
    fields = body["error"]
    return stripe.InvalidRequestError(
        fields["message"], fields.get("param"), fields.get("code"),
        http_body=json.dumps(body), http_status=status, json_body=body,
    )  # fmt: skip


def mapped(exc: stripe.StripeError) -> ProviderError:
    return provider_error(exc, operation="test", secret=SECRET)


# --- declines -------------------------------------------------------------------------------


def test_decline_carries_the_decline_code_and_the_intent() -> None:
    decline = {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
        "charge": "ch_3QxRecorded",
    }
    body = error_body(
        **decline,
        payment_intent=intent(PI_REQUIRES_PAYMENT_METHOD, last_payment_error=decline),
    )
    error = mapped(card_error(body))
    assert isinstance(error, ProviderCardError)
    assert (error.code, error.decline_code) == ("card_declined", "insufficient_funds")
    assert error.http_status == 402
    assert error.payment_intent is not None
    assert error.payment_intent.status == PI_REQUIRES_PAYMENT_METHOD
    assert error.payment_intent.last_decline_code == "insufficient_funds"
    assert error.payment_intent.last_error_message == "Your card has insufficient funds."
    payport_error = to_payport_error(error)
    assert isinstance(payport_error, CardError)
    assert payport_error.code == "STRIPE_CARD_ERROR"


def test_authentication_required_off_session_is_a_card_error() -> None:
    body = error_body(
        type="card_error",
        code="authentication_required",
        decline_code="authentication_required",
        message="Your card was declined. This transaction requires authentication.",
        payment_intent=intent(PI_REQUIRES_PAYMENT_METHOD),
    )
    error = mapped(card_error(body))
    assert isinstance(error, ProviderCardError)
    assert error.code == "authentication_required"


# --- invalid requests -----------------------------------------------------------------------


def test_wrong_state_carries_the_current_intent() -> None:
    body = error_body(
        type="invalid_request_error",
        code="payment_intent_unexpected_state",
        message="This PaymentIntent could not be captured because it has a status of succeeded.",
        payment_intent=intent(PI_SUCCEEDED, amount_received=2500),
    )
    error = mapped(invalid_request(body))
    assert isinstance(error, ProviderInvalidRequest)
    assert error.payment_intent is not None
    assert error.payment_intent.amount_received == 2500
    assert to_payport_error(error).code == "INVALID_STATUS"


def test_amount_too_small_keeps_code_and_param() -> None:
    body = error_body(
        type="invalid_request_error",
        code="amount_too_small",
        param="amount",
        message="Amount must be at least $0.50 usd",
    )
    error = mapped(invalid_request(body))
    assert (error.code, error.param) == ("amount_too_small", "amount")
    assert to_payport_error(error).code == "INVALID_AMOUNT"


def test_missing_object_keeps_its_404() -> None:
    body = error_body(
        type="invalid_request_error",
        code="resource_missing",
        param="intent",
        message="No such payment_intent: 'pi_missing'",
    )
    error = mapped(invalid_request(body, status=404))
    assert isinstance(error, ProviderInvalidRequest)
    assert error.http_status == 404


def test_reused_key_is_an_idempotency_error() -> None:
    message = (
        "Keys for idempotent requests can only be used with the same parameters they were "
        "first used with. Try using a key other than 'authorize:pay_1' if you meant to "
        "execute a different request."
    )
    body = error_body(type="idempotency_error", message=message)
    exc = stripe.IdempotencyError(message, json.dumps(body), 400, body)
    assert isinstance(mapped(exc), ProviderIdempotencyError)


# --- transient and configuration failures ---------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        stripe.RateLimitError("Too many requests", http_status=429),
        stripe.APIConnectionError("Network error: A ConnectTimeout was raised"),
        stripe.APIError("An unknown error occurred", http_status=500),
        stripe.APIError("An unknown error occurred", http_status=503),
        stripe.APIError(
            "There is currently another in-progress request using this Idempotent Key.",
            http_status=409,
            code="idempotency_key_in_use",
        ),
    ],
    ids=["429", "network", "500", "503", "409"],
)
def test_retryable_failures_are_transient(exc: stripe.StripeError) -> None:
    error = mapped(exc)
    assert isinstance(error, ProviderTransientError)
    assert to_payport_error(error).code == "STRIPE_API_ERROR"


@pytest.mark.parametrize(
    "exc",
    [
        stripe.AuthenticationError(
            f"Invalid API Key provided: sk_test_{'*' * 24}eyKey", http_status=401
        ),
        stripe.PermissionError(
            "The provided key 'rk_test_***Key' does not have the required permissions",
            http_status=403,
        ),
    ],
    ids=["401", "403"],
)
def test_rejected_keys_are_not_transient_and_not_echoed(exc: stripe.StripeError) -> None:
    error = mapped(exc)
    assert isinstance(error, ProviderAuthenticationError)
    assert not isinstance(error, ProviderTransientError)
    assert "STRIPE_SECRET_KEY" in error.message
    assert "Key provided" not in error.message
    assert "eyKey" not in error.message


def test_the_secret_key_is_scrubbed_from_any_message() -> None:
    key = SECRET.get_secret_value()
    body = error_body(type="invalid_request_error", message=f"Bad key {key} in request")
    error = mapped(invalid_request(body))
    assert key not in error.message
    assert "[redacted]" in error.message


# --- objects --------------------------------------------------------------------------------


def test_three_d_secure_redirect_becomes_the_next_action_url() -> None:
    url = "https://hooks.stripe.com/3d_secure_2/hosted?merchant=acct_1&payment_intent=pi_3Qx"
    raw = intent(
        PI_REQUIRES_ACTION,
        next_action={
            "type": "redirect_to_url",
            "redirect_to_url": {"url": url, "return_url": "https://shop.example/back"},
        },
    )
    assert intent_view(raw).next_action_url == url


def test_stripe_js_action_has_no_url() -> None:
    raw = intent(PI_REQUIRES_ACTION, next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {}})
    assert intent_view(raw).next_action_url is None


def test_expanded_fields_become_ids() -> None:
    view = intent_view(intent(PI_SUCCEEDED, latest_charge={"id": "ch_3Qx", "object": "charge"}))
    assert view.latest_charge == "ch_3Qx"
    refund = refund_view(
        {
            "id": "re_1", "object": "refund", "amount": 2500, "currency": "usd",
            "status": "succeeded", "reason": "requested_by_customer",
            "charge": {"id": "ch_3Qx"}, "payment_intent": {"id": "pi_3Qx"},
        }
    )  # fmt: skip
    assert (refund.charge, refund.payment_intent) == ("ch_3Qx", "pi_3Qx")
    transfer = transfer_view(
        {
            "id": "tr_1", "object": "transfer", "amount": 2500, "currency": "usd",
            "amount_reversed": 0, "reversed": False, "destination": {"id": "acct_bob"},
            "transfer_group": "order-1", "source_transaction": "ch_3Qx",
        }
    )  # fmt: skip
    assert transfer.destination == "acct_bob"
