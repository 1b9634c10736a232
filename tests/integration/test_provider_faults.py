"""A flaky provider: transient failures are retried with the same key, never doubled."""

from __future__ import annotations

from tests.harness import Stack, nested_authorize, sandbox_only
from tests.provider_truth import by_payment


@sandbox_only("failures are injected by the sandbox; test_stripe_errors.py retries Stripe's")
async def test_transient_failures_retry_then_settle_once(stack: Stack) -> None:
    async with stack.started(PAYPORT_SANDBOX_FAILURE_RATE=0.5) as harness:
        sent = [
            await harness.command("authorize_payment", nested_authorize(f"flaky-{i}"))
            for i in range(12)
        ]
        await harness.drain()
        outcomes = [await harness.outcome(cid) for cid in sent]
        intents = await by_payment(harness.runtime, "payment_intent")
    kinds = {o["type"] for o in outcomes}
    assert kinds <= {"payment.authorized", "payment.failed"}
    failures = [o["payload"] for o in outcomes if o["type"] == "payment.failed"]
    assert all(f["error"] == "STRIPE_API_ERROR" for f in failures)
    assert len(failures) < len(outcomes)  # 4 attempts at 50 %: most get through
    assert all(len(found) == 1 for found in intents.values())
