"""Random sequences of commands, duplicates and webhooks never break the invariants.

After every sequence: at most one capture and one transfer per payment,
statuses only ever moved forward, every distinct command has exactly one
outcome event, and amounts are conserved (transfer + fee = captured,
refunded <= captured <= authorized).
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from payport.payments.states import TRANSITIONS, PaymentStatus
from payport.webhooks.models import ProviderEvent
from payport.webhooks.signature import signature_header
from tests.harness import Harness, nested_authorize
from tests.provider_truth import by_payment

ORDERS = ["order-a", "order-b", "order-c"]
CARDS = ["pm_card_visa", "pm_card_chargeDeclined", "pm_card_authenticationRequired"]
REASONS = [None, "fraudulent", "changed my mind"]

step = st.one_of(
    st.tuples(st.just("authorize"), st.sampled_from(ORDERS), st.sampled_from(CARDS)),
    st.tuples(st.just("release"), st.sampled_from(ORDERS), st.just(None)),
    st.tuples(st.just("revert"), st.sampled_from(ORDERS), st.sampled_from(REASONS)),
    st.tuples(st.just("resend"), st.integers(0, 20), st.just(None)),
    st.tuples(st.just("redeliver_webhook"), st.integers(0, 20), st.just(None)),
    st.tuples(st.just("approve_3ds"), st.sampled_from(ORDERS), st.sampled_from([True, False])),
    st.tuples(st.just("drain"), st.just(None), st.just(None)),
)


def reachable(current: PaymentStatus) -> set[PaymentStatus]:
    seen, frontier = {current}, [current]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


class Scenario:
    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.sent: list[dict[str, Any]] = []
        self.statuses: dict[str, list[PaymentStatus]] = defaultdict(list)

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
            await self.send("authorize_payment", nested_authorize(arg, 3000, extra))
        elif action in ("release", "revert"):
            payment = await self.payment(arg)
            payment_id = payment["paymentId"] if payment else "missing-payment"
            payload: dict[str, Any] = {"payment_id": payment_id}
            if action == "release":
                payload |= {"runner_id": "runner", "runner_connect_account_id": "acct_runner"}
            elif extra:
                payload["reason"] = extra
            await self.send(f"{action}_payment", payload)
        elif action == "resend" and self.sent:
            await self.post(self.sent[arg % len(self.sent)])
        elif action == "redeliver_webhook":
            await self.redeliver(arg)
        elif action == "approve_3ds":
            await self.approve(arg, approve=extra)
        elif action == "drain":
            await self.h.drain()
        await self.observe()

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
            assert response.json()["duplicate"] is True

    async def approve(self, order_id: str, *, approve: bool) -> None:
        payment = await self.payment(order_id)
        if payment and payment["status"] == "REQUIRES_ACTION":
            await self.h.answer_3ds(payment["paymentIntentId"], approve=approve, expect_ok=False)

    async def observe(self) -> None:
        for order_id in ORDERS:
            payment = await self.payment(order_id)
            if payment is not None:
                self.statuses[order_id].append(PaymentStatus(payment["status"]))

    async def check_invariants(self) -> None:
        await self.h.drain()
        await self.observe()
        for order_id, history in self.statuses.items():
            for before, after in itertools.pairwise(history):
                assert after in reachable(before), (order_id, history)
        events = await self.h.all_events()
        outcomes: dict[str, set[str]] = defaultdict(set)
        for event in events:
            outcomes[event["correlation_id"]].add(event["event_id"])
        for envelope in self.sent:
            ids = outcomes.get(envelope["correlation_id"], set())
            pending_3ds = await self.waits_for_authentication(envelope)
            assert len(ids) == (0 if pending_3ds else 1), (envelope, ids)
        await self.check_money()

    async def waits_for_authentication(self, envelope: dict[str, Any]) -> bool:
        if envelope["type"] != "authorize_payment":
            return False
        payment = await self.payment(envelope["payload"]["order_id"])
        return payment is not None and payment["status"] == "REQUIRES_ACTION"

    async def check_money(self) -> None:
        runtime = self.h.runtime
        intents = await by_payment(runtime, "payment_intent")
        transfers = await by_payment(runtime, "transfer")
        refunds = await by_payment(runtime, "refund")
        for order_id in ORDERS:
            payment = await self.payment(order_id)
            if payment is None:
                continue
            pid = payment["paymentId"]
            assert len(intents.get(pid, [])) <= 1
            assert len(transfers.get(pid, [])) <= 1
            intent = intents[pid][0] if intents.get(pid) else None
            received = intent["amount_received"] if intent else 0
            assert received <= 3000
            sent = sum(t["amount"] - t["amount_reversed"] for t in transfers.get(pid, []))
            refunded = sum(r["amount"] for r in refunds.get(pid, []))
            assert refunded <= received
            if payment["status"] == "SUCCEEDED":
                assert received == 3000 and sent == received and refunded == 0
            if payment["status"] == "REVERTED":
                assert sent == 0 and refunded == received
            if payment["status"] in ("AUTHORIZED", "FAILED"):
                assert received == 0 or payment["status"] == "AUTHORIZED"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=14))
async def test_random_sequences_keep_invariants(
    harness: Harness, steps: list[tuple[str, Any, Any]]
) -> None:
    await harness.reset()
    scenario = Scenario(harness)
    for action, arg, extra in steps:
        await scenario.run(action, arg, extra)
    await scenario.check_invariants()
