"""The sandbox provider's contract: Stripe's test-mode semantics on a real SQLite database."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import func, select, update

from payport.db import Base, Database, utcnow
from payport.errors import InvalidSignature
from payport.money import Money
from payport.providers.base import (
    STRIPE_API_VERSION,
    AuthorizeRequest,
    IntentView,
    PaymentProvider,
    ProviderCardError,
    ProviderIdempotencyError,
    ProviderInvalidRequest,
    ProviderTransientError,
)
from payport.providers.sandbox import SandboxProvider, SandboxWebhookDeliverer, sandbox_router
from payport.providers.sandbox.models import (
    SandboxIdempotencyRecord,
    SandboxObject,
    SandboxWebhookDelivery,
)
from payport.providers.sandbox.webhooks import GIVEN_UP_AT
from payport.webhooks.signature import verify_signature

BASE_URL = "http://payport.test"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/s.db")
    async with database.writer.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield database
    await database.dispose()


@pytest.fixture
def sandbox(db: Database) -> SandboxProvider:
    return SandboxProvider(db, base_url=BASE_URL)


_keys = iter(range(1_000_000))


async def authorize(
    provider: SandboxProvider,
    payment_method: str = "pm_card_visa",
    *,
    amount: int = 2000,
    currency: str = "usd",
    key: str | None = None,
    **options: Any,
) -> IntentView:
    request = AuthorizeRequest(Money(amount, currency), payment_method, **options)
    return await provider.create_payment_intent(
        request, idempotency_key=key or f"authorize:{next(_keys)}"
    )


async def count(db: Database, model: type[Base]) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def event_types(db: Database) -> list[str]:
    async with db.read() as session:
        rows = await session.scalars(
            select(SandboxWebhookDelivery.event_type).order_by(SandboxWebhookDelivery.id)
        )
        return list(rows)


def test_sandbox_implements_the_provider_port(sandbox: SandboxProvider) -> None:
    provider: PaymentProvider = sandbox
    assert provider.name == "sandbox"


# --- test cards ------------------------------------------------------------------------------

SUCCEEDING = [
    "pm_card_visa", "pm_card_mastercard", "pm_never_seen_by_the_sandbox", "4242 4242 4242 4242",
    "5555555555554444", "4000000000000077", "378282246310005", "6011111111111117",
]  # fmt: skip


@pytest.mark.parametrize("payment_method", SUCCEEDING)
async def test_good_cards_hold_the_amount_for_manual_capture(
    sandbox: SandboxProvider, payment_method: str
) -> None:
    intent = await authorize(sandbox, payment_method, amount=2500)
    assert intent.id.startswith("pi_")
    assert intent.status == "requires_capture"
    assert (intent.amount_capturable, intent.amount_received) == (2500, 0)
    assert intent.latest_charge is not None and intent.latest_charge.startswith("ch_")
    assert intent.raw["client_secret"].startswith(f"{intent.id}_secret_")
    assert intent.raw["livemode"] is False
    assert intent.raw["payment_method"].startswith("pm_")


async def test_automatic_capture_collects_at_once(sandbox: SandboxProvider) -> None:
    intent = await authorize(sandbox, amount=1234, capture_manually=False, customer="cus_1")
    assert intent.status == "succeeded"
    assert (intent.amount_capturable, intent.amount_received) == (0, 1234)
    assert intent.raw["customer"] == "cus_1"


DECLINING = [
    ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
    ("pm_card_visa_chargeDeclined", "card_declined", "generic_decline"),
    ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
    ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
    ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc"),
    ("pm_card_chargeDeclinedProcessingError", "processing_error", "processing_error"),
    ("pm_card_chargeCustomerFail", "card_declined", "generic_decline"),
    ("4000 0000 0000 0002", "card_declined", "generic_decline"),
    ("4000000000009995", "card_declined", "insufficient_funds"),
    ("4000000000000069", "expired_card", "expired_card"),
    ("4000000000000127", "incorrect_cvc", "incorrect_cvc"),
    ("4000000000000119", "processing_error", "processing_error"),
    ("4000000000000341", "card_declined", "generic_decline"),
]


@pytest.mark.parametrize(("payment_method", "code", "decline_code"), DECLINING)
async def test_declining_cards_raise_a_card_error_carrying_the_failed_intent(
    sandbox: SandboxProvider, payment_method: str, code: str, decline_code: str
) -> None:
    with pytest.raises(ProviderCardError) as caught:
        await authorize(sandbox, payment_method)
    error = caught.value
    assert (error.http_status, error.code, error.decline_code) == (402, code, decline_code)
    intent = error.payment_intent
    assert intent is not None and intent.status == "requires_payment_method"
    assert (intent.last_error_code, intent.last_decline_code) == (code, decline_code)
    stored = await sandbox.retrieve_payment_intent(intent.id)
    assert stored.status == "requires_payment_method"
    assert stored.raw["last_payment_error"]["type"] == "card_error"


async def test_a_number_failing_the_luhn_check_is_an_incorrect_number(
    sandbox: SandboxProvider, db: Database
) -> None:
    with pytest.raises(ProviderCardError) as caught:
        await authorize(sandbox, "4242424242424241")
    assert (caught.value.http_status, caught.value.code) == (402, "incorrect_number")
    assert await count(db, SandboxObject) == 0


async def test_a_payment_method_that_is_neither_id_nor_number_is_missing(
    sandbox: SandboxProvider,
) -> None:
    with pytest.raises(ProviderInvalidRequest) as caught:
        await authorize(sandbox, "visa please")
    assert (caught.value.code, caught.value.param) == ("resource_missing", "payment_method")


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [(49, "usd", "amount_too_small"), (29, "gbp", "amount_too_small"),
     (100_000_000, "usd", "amount_too_large")],
)  # fmt: skip
async def test_amounts_outside_stripes_limits_are_refused(
    sandbox: SandboxProvider, amount: int, currency: str, code: str
) -> None:
    with pytest.raises(ProviderInvalidRequest) as caught:
        await authorize(sandbox, amount=amount, currency=currency)
    assert (caught.value.code, caught.value.param) == (code, "amount")


async def test_created_payment_methods_keep_their_outcome_but_not_their_number(
    sandbox: SandboxProvider, db: Database
) -> None:
    good = await sandbox.create_payment_method("4242 4242 4242 4242", 12, 2040, "123")
    poor = await sandbox.create_payment_method("4000000000009995", 1, 2040, "123")
    assert good.startswith("pm_") and poor.startswith("pm_")
    assert (await authorize(sandbox, good)).status == "requires_capture"
    with pytest.raises(ProviderCardError) as caught:
        await authorize(sandbox, poor)
    assert caught.value.decline_code == "insufficient_funds"
    async with db.read() as session:
        stored = (await session.get(SandboxObject, good)).data  # type: ignore[union-attr]
    assert "4242424242424242" not in stored
    assert json.loads(stored)["card"] == {
        "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2040,
        "funding": "credit", "country": "US",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("number", "exp_month", "exp_year", "cvc", "code"),
    [("4242424242424241", 12, 2040, "123", "incorrect_number"),
     ("4242424242424242", 13, 2040, "123", "invalid_expiry_month"),
     ("4242424242424242", 12, 2001, "123", "invalid_expiry_year"),
     ("4242424242424242", 12, 2040, "12", "invalid_cvc")],
)  # fmt: skip
async def test_bad_card_details_are_card_errors(
    sandbox: SandboxProvider, number: str, exp_month: int, exp_year: int, cvc: str, code: str
) -> None:
    with pytest.raises(ProviderCardError) as caught:
        await sandbox.create_payment_method(number, exp_month, exp_year, cvc)
    assert caught.value.code == code


# --- 3-D Secure --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payment_method",
    ["pm_card_authenticationRequired", "pm_card_threeDSecure2Required", "4000002760003184",
     "4000000000003220"],
)  # fmt: skip
async def test_3ds_cards_wait_for_the_customer(
    sandbox: SandboxProvider, payment_method: str
) -> None:
    intent = await authorize(sandbox, payment_method, return_url="https://shop.test/back")
    assert intent.status == "requires_action"
    assert intent.next_action_url == f"{BASE_URL}/sandbox/authenticate/{intent.id}"
    assert intent.raw["next_action"] == {
        "type": "redirect_to_url",
        "redirect_to_url": {"url": intent.next_action_url, "return_url": "https://shop.test/back"},
    }


async def test_approved_3ds_authorizes_the_card(sandbox: SandboxProvider) -> None:
    held = await authorize(sandbox, "pm_card_authenticationRequired")
    approved = await sandbox.authenticate(held.id, approve=True)
    assert approved.status == "requires_capture"
    assert approved.amount_capturable == 2000 and approved.latest_charge is not None
    assert approved.next_action_url is None
    paid = await authorize(sandbox, "pm_card_threeDSecure2Required", capture_manually=False)
    assert (await sandbox.authenticate(paid.id, approve=True)).status == "succeeded"


async def test_failed_3ds_needs_a_new_payment_method(sandbox: SandboxProvider) -> None:
    held = await authorize(sandbox, "pm_card_authenticationRequired")
    failed = await sandbox.authenticate(held.id, approve=False)
    assert failed.status == "requires_payment_method"
    assert failed.last_error_code == "payment_intent_authentication_failure"
    with pytest.raises(ProviderInvalidRequest) as caught:
        await sandbox.authenticate(held.id, approve=True)
    assert caught.value.code == "payment_intent_unexpected_state"


async def test_3ds_card_off_session_is_declined_as_authentication_required(
    sandbox: SandboxProvider,
) -> None:
    with pytest.raises(ProviderCardError) as caught:
        await authorize(sandbox, "pm_card_authenticationRequired", off_session=True)
    assert caught.value.code == "authentication_required"
    assert caught.value.payment_intent is not None
    assert caught.value.payment_intent.status == "requires_payment_method"


# --- capture and cancel -------------------------------------------------------------------------


async def test_capture_takes_everything_by_default(sandbox: SandboxProvider) -> None:
    held = await authorize(sandbox, amount=5000)
    captured = await sandbox.capture_payment_intent(
        held.id, amount_minor=None, idempotency_key="c1"
    )
    assert captured.status == "succeeded"
    assert (captured.amount_received, captured.amount_capturable) == (5000, 0)


async def test_partial_capture_releases_the_rest(sandbox: SandboxProvider) -> None:
    held = await authorize(sandbox, amount=5000)
    captured = await sandbox.capture_payment_intent(held.id, amount_minor=3000, idempotency_key="c")
    assert (captured.status, captured.amount_received, captured.amount_capturable) == (
        "succeeded", 3000, 0,
    )  # fmt: skip
    refund = await sandbox.create_refund(
        payment_intent=held.id, amount_minor=None, reason="requested_by_customer",
        idempotency_key="r",
    )  # fmt: skip
    assert refund.amount_minor == 3000


async def test_capturing_more_than_capturable_is_refused(sandbox: SandboxProvider) -> None:
    held = await authorize(sandbox, amount=5000)
    with pytest.raises(ProviderInvalidRequest) as caught:
        await sandbox.capture_payment_intent(held.id, amount_minor=5001, idempotency_key="c")
    assert caught.value.code == "amount_too_large"


async def test_capture_in_the_wrong_state_names_the_state(sandbox: SandboxProvider) -> None:
    paid = await authorize(sandbox, capture_manually=False)
    with pytest.raises(ProviderInvalidRequest) as caught:
        await sandbox.capture_payment_intent(paid.id, amount_minor=None, idempotency_key="c")
    error = caught.value
    assert error.code == "payment_intent_unexpected_state"
    assert error.message == (
        "This PaymentIntent could not be captured because it has a status of succeeded."
    )
    assert error.payment_intent is not None and error.payment_intent.id == paid.id


async def test_cancel_releases_a_hold(sandbox: SandboxProvider) -> None:
    held = await authorize(sandbox)
    canceled = await sandbox.cancel_payment_intent(
        held.id, reason="requested_by_customer", idempotency_key="x"
    )
    assert canceled.status == "canceled"
    assert canceled.cancellation_reason == "requested_by_customer"
    assert canceled.amount_capturable == 0


async def test_cancel_works_while_waiting_for_3ds_and_after_a_decline(
    sandbox: SandboxProvider,
) -> None:
    waiting = await authorize(sandbox, "pm_card_authenticationRequired")
    canceled = await sandbox.cancel_payment_intent(
        waiting.id, reason="abandoned", idempotency_key="a"
    )
    assert canceled.status == "canceled"
    with pytest.raises(ProviderCardError) as caught:
        await authorize(sandbox, "pm_card_chargeDeclined")
    assert caught.value.payment_intent is not None
    declined = caught.value.payment_intent.id
    canceled = await sandbox.cancel_payment_intent(
        declined, reason="duplicate", idempotency_key="b"
    )
    assert canceled.status == "canceled"


async def test_cancel_refuses_unknown_reasons_and_finished_intents(
    sandbox: SandboxProvider,
) -> None:
    paid = await authorize(sandbox, capture_manually=False)
    with pytest.raises(ProviderInvalidRequest) as caught:
        await sandbox.cancel_payment_intent(paid.id, reason="bored", idempotency_key="a")
    assert caught.value.param == "cancellation_reason"
    with pytest.raises(ProviderInvalidRequest) as caught:
        await sandbox.cancel_payment_intent(paid.id, reason="duplicate", idempotency_key="b")
    assert caught.value.code == "payment_intent_unexpected_state"


async def test_retrieving_an_unknown_intent_is_resource_missing(sandbox: SandboxProvider) -> None:
    with pytest.raises(ProviderInvalidRequest) as caught:
        await sandbox.retrieve_payment_intent("pi_nope")
    assert caught.value.code == "resource_missing"
    assert caught.value.http_status == 404
    assert caught.value.message == "No such payment_intent: 'pi_nope'"


# --- refunds ---------------------------------------------------------------------------------


async def refund(provider: SandboxProvider, intent_id: str, amount: int | None, key: str) -> Any:
    return await provider.create_refund(
        payment_intent=intent_id, amount_minor=amount, reason="requested_by_customer",
        idempotency_key=key, metadata={"order_id": "o1"},
    )  # fmt: skip


async def test_full_refund_gives_back_everything(sandbox: SandboxProvider) -> None:
    paid = await authorize(sandbox, amount=4000, capture_manually=False)
    done = await refund(sandbox, paid.id, None, "r1")
    assert done.id.startswith("re_")
    assert (done.status, done.amount_minor, done.payment_intent) == ("succeeded", 4000, paid.id)
    assert done.charge == paid.latest_charge and done.raw["metadata"] == {"order_id": "o1"}
    with pytest.raises(ProviderInvalidRequest) as caught:
        await refund(sandbox, paid.id, None, "r2")
    assert caught.value.code == "charge_already_refunded"


async def test_partial_refunds_never_exceed_what_was_received(sandbox: SandboxProvider) -> None:
    paid = await authorize(sandbox, amount=4000, capture_manually=False)
    assert (await refund(sandbox, paid.id, 1500, "r1")).amount_minor == 1500
    with pytest.raises(ProviderInvalidRequest) as caught:
        await refund(sandbox, paid.id, 2600, "r2")
    assert caught.value.code == "amount_too_large"
    assert caught.value.message == (
        "Refund amount ($26.00) is greater than unrefunded amount on charge ($25.00)"
    )
    assert (await refund(sandbox, paid.id, None, "r3")).amount_minor == 2500


async def test_refunding_an_uncaptured_intent_is_refused(sandbox: SandboxProvider) -> None:
    held = await authorize(sandbox)
    with pytest.raises(ProviderInvalidRequest) as caught:
        await refund(sandbox, held.id, None, "r1")
    assert caught.value.code == "payment_intent_unexpected_state"
    with pytest.raises(ProviderInvalidRequest) as caught:
        await sandbox.create_refund(
            payment_intent=held.id, amount_minor=None, reason="changed_mind", idempotency_key="r2"
        )
    assert caught.value.param == "reason"


# --- transfers ---------------------------------------------------------------------------------


async def transfer(
    provider: SandboxProvider, amount: int, key: str, source: str | None = None
) -> Any:
    return await provider.create_transfer(
        amount=Money(amount, "usd"), destination="acct_runner", transfer_group="order_1",
        source_transaction=source, idempotency_key=key,
    )  # fmt: skip


async def test_transfers_from_a_charge_stay_within_what_it_holds(sandbox: SandboxProvider) -> None:
    paid = await authorize(sandbox, amount=10_000, capture_manually=False)
    charge = paid.latest_charge
    await refund(sandbox, paid.id, 1000, "r1")
    first = await transfer(sandbox, 6000, "t1", charge)
    assert first.id.startswith("tr_")
    assert (first.amount_reversed, first.reversed, first.source_transaction) == (0, False, charge)
    assert first.raw["reversals"]["data"] == []
    with pytest.raises(ProviderInvalidRequest) as caught:
        await transfer(sandbox, 3001, "t2", charge)
    assert caught.value.code == "balance_insufficient"
    assert (await transfer(sandbox, 3000, "t3", charge)).amount_minor == 3000
    fetched = await sandbox.retrieve_transfer(first.id)
    assert (fetched.id, fetched.destination, fetched.transfer_group) == (
        first.id, "acct_runner", "order_1",
    )  # fmt: skip


async def test_transfers_need_a_captured_source_and_a_connected_account(
    sandbox: SandboxProvider,
) -> None:
    held = await authorize(sandbox, amount=10_000)
    with pytest.raises(ProviderInvalidRequest) as caught:
        await transfer(sandbox, 100, "t1", held.latest_charge)
    assert caught.value.code == "balance_insufficient"
    with pytest.raises(ProviderInvalidRequest) as caught:
        await transfer(sandbox, 100, "t2", "ch_unknown")
    assert (caught.value.code, caught.value.param) == ("resource_missing", "source_transaction")
    with pytest.raises(ProviderInvalidRequest) as caught:
        await sandbox.create_transfer(
            amount=Money(100, "usd"), destination="runner-7", transfer_group=None,
            source_transaction=None, idempotency_key="t3",
        )  # fmt: skip
    assert (caught.value.code, caught.value.param) == ("resource_missing", "destination")
    with pytest.raises(ProviderInvalidRequest) as caught:
        await sandbox.retrieve_transfer("tr_unknown")
    assert caught.value.code == "resource_missing"


async def test_reversals_take_back_at_most_the_transfer(sandbox: SandboxProvider) -> None:
    paid = await authorize(sandbox, amount=10_000, capture_manually=False)
    sent = await transfer(sandbox, 8000, "t1", paid.latest_charge)
    part = await sandbox.create_transfer_reversal(sent.id, amount_minor=3000, idempotency_key="v1")
    assert part.id.startswith("trr_") and (part.transfer, part.amount_minor) == (sent.id, 3000)
    with pytest.raises(ProviderInvalidRequest):
        await sandbox.create_transfer_reversal(sent.id, amount_minor=5001, idempotency_key="v2")
    rest = await sandbox.create_transfer_reversal(sent.id, amount_minor=None, idempotency_key="v3")
    assert rest.amount_minor == 5000
    after = await sandbox.retrieve_transfer(sent.id)
    assert (after.amount_reversed, after.reversed) == (8000, True)
    assert [r["id"] for r in after.raw["reversals"]["data"]] == [rest.id, part.id]
    with pytest.raises(ProviderInvalidRequest):
        await sandbox.create_transfer_reversal(sent.id, amount_minor=None, idempotency_key="v4")
    # Reversed money is back on the charge and can be transferred again.
    assert (await transfer(sandbox, 10_000, "t2", paid.latest_charge)).amount_minor == 10_000


# --- idempotency ------------------------------------------------------------------------------


async def test_repeating_a_key_replays_without_a_second_effect(
    sandbox: SandboxProvider, db: Database
) -> None:
    first = await authorize(sandbox, key="authorize:p1")
    objects, events = await count(db, SandboxObject), await event_types(db)
    again = await authorize(sandbox, key="authorize:p1")
    assert again.id == first.id and again.raw == first.raw
    assert await count(db, SandboxObject) == objects
    assert await event_types(db) == events
    captured = await sandbox.capture_payment_intent(first.id, amount_minor=None,
                                                    idempotency_key="capture:p1")  # fmt: skip
    replayed = await sandbox.capture_payment_intent(first.id, amount_minor=None,
                                                    idempotency_key="capture:p1")  # fmt: skip
    assert replayed.raw == captured.raw


async def test_a_replayed_decline_raises_the_same_error(sandbox: SandboxProvider) -> None:
    with pytest.raises(ProviderCardError) as first:
        await authorize(sandbox, "pm_card_chargeDeclined", key="authorize:p2")
    with pytest.raises(ProviderCardError) as again:
        await authorize(sandbox, "pm_card_chargeDeclined", key="authorize:p2")
    assert (again.value.code, again.value.decline_code) == ("card_declined", "generic_decline")
    assert first.value.payment_intent is not None and again.value.payment_intent is not None
    assert again.value.payment_intent.id == first.value.payment_intent.id


async def test_a_key_reused_with_other_parameters_is_an_idempotency_error(
    sandbox: SandboxProvider,
) -> None:
    await authorize(sandbox, amount=1000, key="authorize:p3")
    with pytest.raises(ProviderIdempotencyError) as caught:
        await authorize(sandbox, amount=1001, key="authorize:p3")
    assert caught.value.message.startswith(
        "Keys for idempotent requests can only be used with the same parameters"
    )


async def test_concurrent_requests_with_one_key_execute_once(
    sandbox: SandboxProvider, db: Database
) -> None:
    results = await asyncio.gather(*(authorize(sandbox, key="authorize:p4") for _ in range(5)))
    assert len({intent.id for intent in results}) == 1
    assert await count(db, SandboxIdempotencyRecord) == 1
    assert await event_types(db) == ["payment_intent.amount_capturable_updated"]


# --- latency and failure injection ------------------------------------------------------------


async def test_latency_is_simulated_outside_the_single_writer(db: Database) -> None:
    slow = SandboxProvider(db, base_url=BASE_URL, latency_ms=200)
    started = time.monotonic()
    await asyncio.gather(*(authorize(slow) for _ in range(5)))
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 0.8  # five sleeps overlap instead of queueing on SQLite's writer


async def test_injected_failures_are_transient_and_store_nothing(db: Database) -> None:
    flaky = SandboxProvider(db, base_url=BASE_URL, failure_rate=1.0)
    with pytest.raises(ProviderTransientError, match="sandbox injected failure"):
        await authorize(flaky, key="authorize:p5")
    assert await count(db, SandboxObject) == 0
    assert await count(db, SandboxIdempotencyRecord) == 0
    half = SandboxProvider(db, base_url=BASE_URL, failure_rate=0.5, rng=random.Random(7))
    outcomes = []
    for _ in range(40):
        try:
            await authorize(half)
            outcomes.append(True)
        except ProviderTransientError:
            outcomes.append(False)
    assert 5 < outcomes.count(False) < 35


# --- events -------------------------------------------------------------------------------------


async def test_every_state_change_records_a_stripe_shaped_event(
    sandbox: SandboxProvider, db: Database
) -> None:
    held = await authorize(sandbox, "pm_card_authenticationRequired", key="authorize:p6")
    await sandbox.authenticate(held.id, approve=True)
    await sandbox.capture_payment_intent(held.id, amount_minor=None, idempotency_key="capture:p6")
    await refund(sandbox, held.id, 500, "refund:p6")
    sent = await transfer(sandbox, 1000, "transfer:p6", held.latest_charge)
    await sandbox.create_transfer_reversal(sent.id, amount_minor=None, idempotency_key="rev:p6")
    with pytest.raises(ProviderCardError):
        await authorize(sandbox, "pm_card_chargeDeclined")
    other = await authorize(sandbox)
    await sandbox.cancel_payment_intent(other.id, reason="abandoned", idempotency_key="cancel")
    assert await event_types(db) == [
        "payment_intent.requires_action", "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded", "charge.refunded", "transfer.created", "transfer.reversed",
        "payment_intent.payment_failed", "payment_intent.amount_capturable_updated",
        "payment_intent.canceled",
    ]  # fmt: skip
    async with db.read() as session:
        bodies = [json.loads(b) for b in await session.scalars(select(SandboxWebhookDelivery.body))]
    first, refunded = bodies[0], bodies[3]
    assert first["id"].startswith("evt_") and first["object"] == "event"
    assert first["api_version"] == STRIPE_API_VERSION and first["livemode"] is False
    assert first["request"]["id"].startswith("req_")
    assert first["request"]["idempotency_key"] == "authorize:p6"
    assert first["data"]["object"]["status"] == "requires_action"
    assert refunded["data"]["object"]["object"] == "charge"
    assert refunded["data"]["object"]["amount_refunded"] == 500


async def test_webhook_secret_is_generated_once_and_kept(db: Database) -> None:
    secret = await SandboxProvider(db, base_url=BASE_URL).webhook_secret()
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 32
    assert await SandboxProvider(db, base_url=BASE_URL).webhook_secret() == secret
    configured = SandboxProvider(db, base_url=BASE_URL, configured_webhook_secrets=["whsec_a"])
    assert await configured.webhook_secret() == "whsec_a"


# --- webhook delivery ----------------------------------------------------------------------------


class Receiver:
    """A tiny payport-like webhook endpoint that checks signatures and can be told to fail."""

    def __init__(self, secret: str, failures: int = 0) -> None:
        self.secret, self.failures = secret, failures
        self.events: list[dict[str, Any]] = []
        self.app = FastAPI()
        self.app.post("/webhooks/stripe")(self.receive)

    async def receive(self, request: Request) -> Response:
        payload = await request.body()
        try:
            verify_signature(payload, request.headers.get("stripe-signature"), [self.secret])
        except InvalidSignature:
            return Response(status_code=400)
        if self.failures > 0:
            self.failures -= 1
            return Response(status_code=500)
        self.events.append(json.loads(payload))
        return Response(status_code=200)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE_URL)


async def make_due(db: Database) -> None:
    """Let time pass until every pending retry is due (given-up deliveries never are)."""
    async with db.transaction() as session:
        await session.execute(
            update(SandboxWebhookDelivery)
            .where(SandboxWebhookDelivery.next_attempt_at < GIVEN_UP_AT)
            .values(next_attempt_at=utcnow())
        )


async def deliveries(db: Database) -> list[SandboxWebhookDelivery]:
    async with db.read() as session:
        rows = await session.scalars(select(SandboxWebhookDelivery).order_by("id"))
        return list(rows)


async def test_deliverer_posts_signed_events_in_order(
    sandbox: SandboxProvider, db: Database
) -> None:
    held = await authorize(sandbox)
    await sandbox.cancel_payment_intent(held.id, reason="abandoned", idempotency_key="c")
    receiver = Receiver(await sandbox.webhook_secret())
    async with receiver.client() as client:
        deliverer = SandboxWebhookDeliverer(
            db, provider=sandbox, url=f"{BASE_URL}/webhooks/stripe", client=client
        )
        assert await deliverer.pending_count() == 2
        assert await deliverer.deliver_due() == 2
        assert await deliverer.deliver_due() == 0
        assert await deliverer.pending_count() == 0
    assert [e["type"] for e in receiver.events] == [
        "payment_intent.amount_capturable_updated", "payment_intent.canceled",
    ]  # fmt: skip
    assert all(row.delivered_at is not None and row.attempts == 1 for row in await deliveries(db))


async def test_deliverer_retries_a_failing_receiver_with_backoff(
    sandbox: SandboxProvider, db: Database
) -> None:
    await authorize(sandbox)
    receiver = Receiver(await sandbox.webhook_secret(), failures=1)
    async with receiver.client() as client:
        deliverer = SandboxWebhookDeliverer(
            db, provider=sandbox, url=f"{BASE_URL}/webhooks/stripe", client=client
        )
        assert await deliverer.deliver_due() == 1
        [row] = await deliveries(db)
        assert (row.attempts, row.delivered_at) == (1, None)
        assert row.last_error is not None and row.last_error.startswith("HTTP 500")
        assert utcnow() < row.next_attempt_at <= utcnow() + timedelta(seconds=2)
        assert await deliverer.deliver_due() == 0  # not due yet
        await make_due(db)
        assert await deliverer.deliver_due() == 1
    [row] = await deliveries(db)
    assert (row.attempts, row.last_error) == (2, None) and row.delivered_at is not None
    assert len(receiver.events) == 1


async def test_deliverer_gives_up_after_max_attempts_on_network_errors(
    sandbox: SandboxProvider, db: Database
) -> None:
    await authorize(sandbox)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with httpx.AsyncClient(timeout=2) as client:
        deliverer = SandboxWebhookDeliverer(
            db, provider=sandbox, url=f"http://127.0.0.1:{port}/hook", client=client,
            max_attempts=2,
        )  # fmt: skip
        assert await deliverer.deliver_due() == 1
        await make_due(db)
        assert await deliverer.deliver_due() == 1
        await make_due(db)
        assert await deliverer.deliver_due() == 0
        [row] = await deliveries(db)
        assert row.attempts == 2 and row.delivered_at is None
        assert row.last_error is not None and row.last_error.startswith("given up after 2")
        assert await deliverer.pending_count() == 0


# --- the 3-D Secure page -------------------------------------------------------------------------


def page_client(provider: object) -> httpx.AsyncClient:
    app = FastAPI()
    app.state.provider = provider
    app.include_router(sandbox_router)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)


async def test_authentication_page_offers_approve_and_fail(sandbox: SandboxProvider) -> None:
    held = await authorize(sandbox, "pm_card_authenticationRequired", amount=1999)
    async with page_client(sandbox) as client:
        page = await client.get(f"/sandbox/authenticate/{held.id}")
        missing = await client.get("/sandbox/authenticate/pi_<script>")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "<title>payport sandbox — 3-D Secure</title>" in page.text
    assert "19.99 USD" in page.text
    assert f'action="/sandbox/authenticate/{held.id}/approve"' in page.text
    assert ">Approve</button>" in page.text and ">Fail</button>" in page.text
    assert missing.status_code == 404 and "<script>" not in missing.text


async def test_approving_redirects_to_the_return_url(sandbox: SandboxProvider) -> None:
    held = await authorize(
        sandbox, "pm_card_authenticationRequired", return_url="https://shop.test/done?o=1"
    )
    async with page_client(sandbox) as client:
        answer = await client.post(f"/sandbox/authenticate/{held.id}/approve")
        again = await client.post(f"/sandbox/authenticate/{held.id}/approve")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(
        f"https://shop.test/done?o=1&payment_intent={held.id}&payment_intent_client_secret="
    )
    assert answer.headers["location"].endswith("&redirect_status=succeeded")
    assert again.status_code == 409
    assert (await sandbox.retrieve_payment_intent(held.id)).status == "requires_capture"


async def test_failing_without_return_url_shows_the_result(sandbox: SandboxProvider) -> None:
    held = await authorize(sandbox, "pm_card_authenticationRequired")
    async with page_client(sandbox) as client:
        answer = await client.post(f"/sandbox/authenticate/{held.id}/fail")
    assert answer.status_code == 200
    assert "requires_payment_method" in answer.text


async def test_pages_do_not_exist_without_the_sandbox_provider() -> None:
    async with page_client(object()) as client:
        assert (await client.get("/sandbox/authenticate/pi_x")).status_code == 404
