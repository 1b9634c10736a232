"""Random sequences of commands, duplicates, webhooks and 3-D Secure answers keep the ledger true.

After every step, on SQLite and PostgreSQL: every entry balances, every
balance equals its postings, every payment's hold and escrow match its
status, every release split into transfer + fee, the ledger agrees with the
provider's own records, and `/history` read from the ledger says exactly
what the payments table says (the contract's semantics).
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from payport.money import Money
from payport.payments.models import Payment
from payport.webhooks.models import ProviderEvent
from payport.webhooks.signature import signature_header
from tests.harness import Harness, nested_authorize, wipe
from tests.ledger.helpers import assert_ledger_clean

ORDERS = ["order-a", "order-b"]
CUSTOMERS = ["user_alice", "user_dave"]
RUNNERS = ["runner_x", "runner_y"]
USERS = CUSTOMERS + RUNNERS
CARDS = [
    "pm_card_visa",
    "pm_card_visa",
    "pm_card_visa",
    "pm_card_chargeDeclined",
    "pm_card_authenticationRequired",
]
AMOUNTS = [1999, 3000]

_ARGS: dict[str, st.SearchStrategy[tuple[Any, Any]]] = {
    "authorize": st.tuples(
        st.sampled_from(ORDERS),
        st.tuples(st.sampled_from(CARDS), st.sampled_from(CUSTOMERS), st.sampled_from(AMOUNTS)),
    ),
    "release": st.tuples(st.sampled_from(ORDERS), st.sampled_from(RUNNERS)),
    "revert": st.tuples(st.sampled_from(ORDERS), st.just(None)),
    "capture": st.tuples(st.sampled_from(ORDERS), st.just(None)),
    "resend": st.tuples(st.integers(0, 20), st.just(None)),
    "redeliver_webhook": st.tuples(st.integers(0, 20), st.just(None)),
    "approve_3ds": st.tuples(st.sampled_from(ORDERS), st.booleans()),
    "drain": st.tuples(st.just(None), st.just(None)),
}
# Weighted so payments get far along their paths: repeated names are drawn more often.
_ACTIONS = ["authorize"] * 3 + ["release"] * 3 + ["revert"] * 3 + list(_ARGS)
_COMMANDS = {"authorize", "release", "revert", "resend"}


def _step(action: str) -> st.SearchStrategy[tuple[str, Any, Any, bool]]:
    """A command is mostly processed at once, sometimes left queued to settle with others."""
    drain = st.sampled_from([True, True, True, False]) if action in _COMMANDS else st.just(False)
    return st.tuples(st.just(action), _ARGS[action], drain).map(
        lambda t: (t[0], t[1][0], t[1][1], t[2])
    )


step = st.sampled_from(_ACTIONS).flatmap(_step)


class Scenario:
    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.sent: list[dict[str, Any]] = []

    async def payment(self, order_id: str) -> dict[str, Any] | None:
        response = await self.h.client.get(f"/payment/{order_id}/status")
        return response.json()["payment"] if response.status_code == 200 else None

    async def send(self, kind: str, payload: dict[str, Any]) -> None:
        envelope = {"type": kind, "correlation_id": str(uuid.uuid4()), "payload": payload}
        self.sent.append(envelope)
        await self.post(envelope)

    async def post(self, envelope: dict[str, Any]) -> None:
        response = await self.h.client.post("/api/v1/commands", content=orjson.dumps(envelope))
        assert response.status_code == 202

    async def run(self, action: str, arg: Any, extra: Any) -> None:
        if action == "authorize":
            card, customer, amount = extra
            payload = nested_authorize(arg, amount, card)
            payload["customer"]["clerkUserId"] = customer
            await self.send("authorize_payment", payload)
        elif action in ("release", "revert", "capture"):
            await self.act(action, arg, extra)
        elif action == "resend" and self.sent:
            await self.post(self.sent[arg % len(self.sent)])
        elif action == "redeliver_webhook":
            await self.redeliver(arg)
        elif action == "approve_3ds":
            await self.approve(arg, approve=extra)
        elif action == "drain":
            await self.h.drain()

    async def act(self, action: str, order_id: str, runner: str | None) -> None:
        payment = await self.payment(order_id)
        payment_id = payment["paymentId"] if payment else "missing-payment"
        if action == "capture":  # payport's own API: synchronous, the platform keeps it
            await self.h.client.post(f"/api/v1/payments/{payment_id}/capture")
            return
        payload: dict[str, Any] = {"payment_id": payment_id}
        if action == "release":
            payload |= {"runner_id": runner, "runner_connect_account_id": f"acct_{runner}"}
        await self.send(f"{action}_payment", payload)

    async def redeliver(self, index: int) -> None:
        async with self.h.runtime.db.read() as session:
            bodies = (await session.execute(select(ProviderEvent.body))).scalars().all()
        if bodies:
            body = bodies[index % len(bodies)].encode()
            secret = (await self.h.runtime.webhook_secrets())[0]
            response = await self.h.client.post(
                "/stripe-webhook",
                content=body,
                headers={"Stripe-Signature": signature_header(secret, body)},
            )
            assert response.status_code == 200

    async def approve(self, order_id: str, *, approve: bool) -> None:
        payment = await self.payment(order_id)
        if payment and payment["status"] == "REQUIRES_ACTION":
            await self.h.answer_3ds(payment["paymentIntentId"], approve=approve, expect_ok=False)

    async def check_ledger(self) -> None:
        await assert_ledger_clean(self.h)
        expected = await self.history_from_payments()
        for user_id in USERS:
            response = await self.h.client.get(f"/history/{user_id}")
            assert response.json() == expected[user_id], user_id

    async def history_from_payments(self) -> dict[str, dict[str, Any]]:
        """CONTRACT.md's /history, computed the old way: straight from the payments table."""
        async with self.h.runtime.db.read() as session:
            payments = (await session.scalars(select(Payment))).all()
        spent: dict[str, list[Money]] = defaultdict(list)
        earned: dict[str, list[Money]] = defaultdict(list)
        for p in payments:
            if p.status in ("AUTHORIZED", "SUCCEEDED") and p.customer_user_id:
                spent[p.customer_user_id].append(p.money)
            if p.status == "SUCCEEDED" and p.runner_id:
                earned[p.runner_id].append(Money(p.transfer_amount_minor, p.currency))
        return {
            user: {
                "userId": user,
                "totalSpent": float(sum((m.to_major() for m in spent[user]), Decimal(0))),
                "totalEarned": float(sum((m.to_major() for m in earned[user]), Decimal(0))),
                "spentCount": len(spent[user]),
                "earnedCount": len(earned[user]),
            }
            for user in USERS
        }


@settings(
    max_examples=int(os.environ.get("LEDGER_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    opening=st.lists(_step("authorize"), min_size=1, max_size=2),
    steps=st.lists(step, min_size=1, max_size=12),
)
async def test_random_sequences_keep_the_ledger_true(
    harness: Harness,
    opening: list[tuple[str, Any, Any, bool]],
    steps: list[tuple[str, Any, Any, bool]],
) -> None:
    await wipe(harness.runtime)
    scenario = Scenario(harness)
    for action, arg, extra, then_drain in opening + steps:
        await scenario.run(action, arg, extra)
        if then_drain:
            await harness.drain()
        await scenario.check_ledger()
    await harness.drain()
    await scenario.check_ledger()
