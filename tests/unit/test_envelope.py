"""The command envelope and both authorize shapes."""

import pytest

from payport.errors import InvalidAmount, InvalidPayload
from payport.messaging.envelope import build_event, parse_envelope, target_of
from payport.payments.schemas import parse_authorize, parse_release, parse_revert


def test_envelope_accepts_contract_example() -> None:
    envelope = parse_envelope(
        b'{"type": "authorize_payment", "correlation_id": "5a0c", '
        b'"timestamp": "2025-03-31T10:15:30.123456", "payload": {"order_id": "o1"}}'
    )
    assert envelope.type == "authorize_payment"
    assert envelope.correlation_id == "5a0c"
    assert target_of(envelope) == "o1"


def test_correlation_id_inside_payload_is_accepted() -> None:
    envelope = parse_envelope(
        b'{"type": "revert_payment", "payload": {"payment_id": "p", "correlation_id": "c9"}}'
    )
    assert envelope.correlation_id == "c9"
    assert target_of(envelope) == "p"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"correlation_id": "c", "payload": {}}', "type"),
        (b'{"type": "pay_me", "correlation_id": "c", "payload": {}}', "type"),
        (b'{"type": "revert_payment", "payload": {}}', "correlation_id"),
        (b'{"type": "revert_payment", "correlation_id": "c", "payload": []}', "payload"),
    ],
)
def test_bad_envelopes_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        parse_envelope(raw)
    assert caught.value.field == field


def test_events_carry_source_and_stable_id() -> None:
    event = build_event("payment.authorized", {"order_id": "o"}, correlation_id="c", key="o")
    assert event.body["source"] == "payment-service"
    assert event.body["event_id"] == event.event_id
    assert event.body["correlation_id"] == "c"
    assert set(event.body) == {
        "type",
        "correlation_id",
        "timestamp",
        "payload",
        "source",
        "event_id",
    }


def test_flat_shape_with_provider_customer() -> None:
    command = parse_authorize(
        {"customer_id": "cus_123", "payment_method_id": "pm_card_visa", "amount": 1500,
         "currency": "USD", "order_id": "o1"},
        "usd",
    )  # fmt: skip
    assert command.provider_customer_id == "cus_123"
    assert command.customer_user_id == "cus_123"
    assert command.amount.amount_minor == 1500
    assert command.amount.currency == "usd"


def test_flat_shape_with_marketplace_user() -> None:
    command = parse_authorize(
        {"customer_id": "user_9", "payment_method_id": "pm_card_visa", "amount": 1500,
         "order_id": "o1"},
        "eur",
    )  # fmt: skip
    assert command.provider_customer_id is None
    assert command.customer_user_id == "user_9"
    assert command.amount.currency == "eur"


def test_nested_shape() -> None:
    command = parse_authorize(
        {"order_id": "o2", "return_url": "https://shop.example/return",
         "customer": {"clerkUserId": "user_1", "stripeCustomerId": "cus_1",
                      "userStripeCard": {"payment_method_id": "pm_card_visa"}},
         "order": {"amount": 2599, "description": "Bubble tea"}},
        "usd",
    )  # fmt: skip
    assert (command.customer_user_id, command.provider_customer_id) == ("user_1", "cus_1")
    assert command.description == "Bubble tea"
    assert command.return_url == "https://shop.example/return"


@pytest.mark.parametrize("amount", [None, 0, -5, 12.5, "1000", True, 100_000_000, 49])
def test_bad_amounts_are_invalid_amount(amount: object) -> None:
    payload = {"order_id": "o", "payment_method_id": "pm_card_visa", "amount": amount}
    with pytest.raises(InvalidAmount) as caught:
        parse_authorize(payload, "usd")
    assert caught.value.field == "amount"


def test_release_needs_a_connected_account() -> None:
    with pytest.raises(InvalidPayload) as caught:
        parse_release({"payment_id": "p", "runner_id": "r"})
    assert caught.value.field == "runner_connect_account_id"
    with pytest.raises(InvalidPayload):
        parse_release({"payment_id": "p", "runner_id": "r", "runner_connect_account_id": "bob"})


def test_revert_reason_is_optional() -> None:
    assert parse_revert({"payment_id": "p"}).reason is None
