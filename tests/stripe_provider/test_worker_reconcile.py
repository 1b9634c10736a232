"""A real `payport serve` on Stripe (localstripe) heals a hold canceled behind its back by itself.

No webhook reaches this payport (none is registered for it), so only the worker's
reconcile loop, every PAYPORT_RECONCILE_INTERVAL seconds, can learn that the hold is gone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from bench.server import payport_server

from tests.harness import STRIPE_SECRET_KEY

AUTH = {"Authorization": f"Bearer {STRIPE_SECRET_KEY}"}


def wait_for_status(base: str, order_id: str, status: str, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(f"{base}/payment/{order_id}/status", timeout=5)
        if response.status_code == 200 and response.json()["payment"]["status"] == status:
            return response.json()["payment"]
        assert time.monotonic() < deadline, f"{order_id} never became {status}: {response.text}"
        time.sleep(0.2)


def wait_for_events(base: str, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Published events, once there are `count` (the relay publishes after the commit)."""
    deadline = time.monotonic() + timeout_s
    while True:
        events: list[dict[str, Any]] = httpx.get(
            f"{base}/api/v1/events", params={"after": 0}, timeout=5
        ).json()["data"]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def test_worker_reconcile_fails_a_hold_canceled_behind_its_back(
    stripe_url: str, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'payport.db'}",
        "PAYPORT_PROVIDER": "stripe",
        "STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
        "STRIPE_API_BASE": stripe_url,
        "PAYPORT_RECONCILE_INTERVAL": "1",
    }
    with payport_server(env) as port:
        base = f"http://127.0.0.1:{port}"
        command = {
            "type": "authorize_payment",
            "correlation_id": "reconcile-loop-1",
            "payload": {
                "order_id": "order-loop",
                "customer_id": "user_erin",
                "payment_method_id": "pm_card_visa",
                "amount": 1800,
            },
        }
        assert httpx.post(f"{base}/api/v1/commands", json=command).status_code == 202
        payment = wait_for_status(base, "order-loop", "AUTHORIZED")

        intent_id = payment["paymentIntentId"]
        canceled = httpx.post(
            f"{stripe_url}/v1/payment_intents/{intent_id}/cancel",
            data={"cancellation_reason": "abandoned"},
            headers=AUTH,
        )
        assert canceled.status_code == 200, canceled.text

        wait_for_status(base, "order-loop", "FAILED")
        events = wait_for_events(base, 2)
    assert [(e["type"], e["correlation_id"]) for e in events] == [
        ("payment.authorized", "reconcile-loop-1"),
        ("payment.failed", "reconcile-loop-1"),
    ]
    assert events[1]["payload"]["error"] == "PAYMENT_CANCELED"
