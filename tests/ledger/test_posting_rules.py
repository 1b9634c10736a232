"""Each posting rule moves exactly the money its movement moves, and always balances."""

from __future__ import annotations

import pytest

from payport.errors import InvalidPayload
from payport.ledger import accounts
from payport.ledger import service as ledger
from payport.ledger.accounts import Account, AccountKind
from payport.ledger.drafts import Draft, EntryKind, Line, UnbalancedEntry
from payport.money import Money

PID = "pay-1"


def usd(amount: int) -> Money:
    return Money(amount, "usd")


def moves(draft: Draft) -> dict[str, tuple[int, int]]:
    """{account code: (amount, payment count)} of a draft."""
    return {line.account.code: (line.amount_minor, line.payment_count) for line in draft.lines}


def test_authorize_holds_the_customers_money() -> None:
    draft = ledger.authorize(payment_id=PID, customer="alice", amount=usd(2500))
    assert (draft.cause, draft.kind, draft.payment_id, draft.currency) == (
        "authorize:pay-1",
        EntryKind.AUTHORIZE,
        PID,
        "usd",
    )
    assert moves(draft) == {"customer:alice": (-2500, 1), "hold:pay-1": (2500, 0)}


def test_full_capture_moves_the_hold_into_escrow() -> None:
    draft = ledger.capture(
        payment_id=PID, customer="alice", authorized=usd(2500), captured=usd(2500)
    )
    assert draft.cause == "capture:pay-1"
    assert moves(draft) == {"hold:pay-1": (-2500, 0), "escrow:pay-1": (2500, 0)}


def test_partial_capture_gives_the_rest_back_to_the_customer() -> None:
    draft = ledger.capture(
        payment_id=PID, customer="alice", authorized=usd(2500), captured=usd(1500)
    )
    assert moves(draft) == {
        "hold:pay-1": (-2500, 0),
        "escrow:pay-1": (1500, 0),
        "customer:alice": (1000, 0),
    }


def test_cancel_releases_the_hold_and_the_payment_no_longer_counts() -> None:
    draft = ledger.cancel(payment_id=PID, customer="alice", amount=usd(2500))
    assert draft.cause == "cancel:pay-1"
    assert moves(draft) == {"hold:pay-1": (-2500, 0), "customer:alice": (2500, -1)}


def test_transfer_splits_the_release_into_runner_share_and_fee() -> None:
    draft = ledger.transfer(payment_id=PID, runner="bob", transfer=usd(1750), fee=usd(249))
    assert draft.cause == "transfer:pay-1"
    assert moves(draft) == {
        "escrow:pay-1": (-1999, 0),
        "runner:bob": (1750, 1),
        "platform_fees": (249, 0),
    }


def test_transfer_without_fee_posts_no_fee_line() -> None:
    draft = ledger.transfer(payment_id=PID, runner="bob", transfer=usd(2500), fee=usd(0))
    assert moves(draft) == {"escrow:pay-1": (-2500, 0), "runner:bob": (2500, 1)}


def test_reverse_transfer_brings_the_runners_share_back_to_escrow() -> None:
    draft = ledger.reverse_transfer(payment_id=PID, runner="bob", amount=usd(1750))
    assert draft.cause == "reverse_transfer:pay-1"
    assert moves(draft) == {"runner:bob": (-1750, -1), "escrow:pay-1": (1750, 0)}


def test_fee_refund_is_borne_by_the_platform() -> None:
    draft = ledger.fee_refund(payment_id=PID, fee=usd(249))
    assert draft.cause == "fee_refund:pay-1"
    assert moves(draft) == {"refunds": (-249, 0), "escrow:pay-1": (249, 0)}


def test_refund_returns_escrow_to_the_customer() -> None:
    draft = ledger.refund(payment_id=PID, customer="alice", amount=usd(2500))
    assert draft.cause == "refund:pay-1"
    assert moves(draft) == {"escrow:pay-1": (-2500, 0), "customer:alice": (2500, -1)}


def test_a_customer_without_user_id_posts_to_the_shared_anonymous_account() -> None:
    draft = ledger.authorize(payment_id=PID, customer=None, amount=usd(900))
    assert moves(draft)["customer"] == (-900, 1)


@pytest.mark.parametrize(
    "draft",
    [
        ledger.authorize(payment_id=PID, customer="a", amount=Money(500, "jpy")),
        ledger.capture(payment_id=PID, customer="a", authorized=usd(999), captured=usd(1)),
        ledger.cancel(payment_id=PID, customer="a", amount=usd(50)),
        ledger.transfer(payment_id=PID, runner="r", transfer=usd(1), fee=usd(10**12)),
        ledger.reverse_transfer(payment_id=PID, runner="r", amount=usd(7)),
        ledger.fee_refund(payment_id=PID, fee=usd(3)),
        ledger.refund(payment_id=PID, customer=None, amount=usd(50)),
    ],
)
def test_every_rule_balances_in_integers(draft: Draft) -> None:
    assert sum(line.amount_minor for line in draft.lines) == 0
    assert all(isinstance(line.amount_minor, int) for line in draft.lines)


def test_an_unbalanced_draft_is_refused() -> None:
    with pytest.raises(UnbalancedEntry):
        Draft("x:1", EntryKind.REFUND, "1", "usd", (Line(accounts.escrow("1"), -5),))
    with pytest.raises(UnbalancedEntry):
        Draft(
            "x:1",
            EntryKind.REFUND,
            "1",
            "usd",
            (Line(accounts.PLATFORM_FEES, 5), Line(accounts.PLATFORM_FEES, -5)),
        )


def test_account_codes_round_trip() -> None:
    for account in (
        accounts.customer("user_alice"),
        accounts.customer(None),
        accounts.hold("p1"),
        accounts.escrow("p1"),
        accounts.runner("bob:2"),
        accounts.PLATFORM_FEES,
        accounts.REFUNDS,
    ):
        assert Account.parse(account.code) == account


@pytest.mark.parametrize("code", ["wallet:x", "platform_fees:x", "escrow", "hold:", ""])
def test_malformed_account_codes_name_the_field(code: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        Account.parse(code)
    assert caught.value.field == "account"


def test_shared_accounts_spread_over_buckets_and_payment_accounts_do_not() -> None:
    fee_buckets = {accounts.PLATFORM_FEES.bucket(f"pay-{n}") for n in range(400)}
    assert len(fee_buckets) == accounts.PLATFORM_FEES.buckets == 16
    assert accounts.PLATFORM_FEES.bucket("pay-7") == accounts.PLATFORM_FEES.bucket("pay-7")
    assert {accounts.escrow(f"pay-{n}").bucket(f"pay-{n}") for n in range(50)} == {0}
    assert accounts.customer("alice").buckets == 4
    assert accounts.customer(None).buckets == 16
    assert Account(AccountKind.RUNNER, "bob").buckets == 4
