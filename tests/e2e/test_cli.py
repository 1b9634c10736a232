"""The `payport` command as an operator uses it: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.server import ROOT, payport_server


def payport(
    *args: str, env: dict[str, str], stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "payport", *args],
        cwd=ROOT,
        env=os.environ | env,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def envelope(order_id: str) -> dict[str, Any]:
    return {
        "type": "authorize_payment",
        "correlation_id": f"cli-{order_id}",
        "payload": {"order_id": order_id, "customer_id": "user_cli",
                    "payment_method_id": "pm_card_visa", "amount": 700},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PORT", "not-a-port"), ("DEFAULT_CURRENCY", "zzz"), ("PAYPORT_PROVIDER", "paypal")],
)
def test_invalid_configuration_stops_with_one_line_naming_it(variable: str, value: str) -> None:
    result = payport("migrate", env={variable: value})
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert variable in lines[0]


def test_production_refuses_the_sandbox() -> None:
    result = payport("migrate", env={"PAYPORT_ENV": "production"})
    assert result.returncode == 2
    assert "PAYPORT_PROVIDER" in result.stderr.decode()


def test_send_then_events_round_trip(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}
    assert payport("migrate", env=env).returncode == 0
    command = tmp_path / "authorize.json"
    command.write_text(json.dumps(envelope("order-cli-1")))
    sent = payport("send", str(command), env=env)
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["correlation_id"] == "cli-order-cli-1"
    piped = payport("send", "-", env=env, stdin=json.dumps(envelope("order-cli-2")).encode())
    assert piped.returncode == 0, piped.stderr
    with payport_server(env) as port:
        for _ in range(100):
            done = httpx.get(f"http://127.0.0.1:{port}/payment/order-cli-2/status")
            if done.status_code == 200 and done.json()["payment"]["status"] == "AUTHORIZED":
                break
            subprocess.run(["sleep", "0.1"], check=True)
        printed = payport("events", env=env)
    assert printed.returncode == 0
    events = [json.loads(line) for line in printed.stdout.decode().splitlines()]
    outcomes = {e["correlation_id"]: e["type"] for e in events}
    assert outcomes == {
        "cli-order-cli-1": "payment.authorized",
        "cli-order-cli-2": "payment.authorized",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b'{"type": "steal_money", "correlation_id": "c", "payload": {}}', "type"),
    ],
)
def test_send_rejects_bad_envelopes(tmp_path: Path, body: bytes, field: str) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}
    result = payport("send", "-", env=env, stdin=body)
    assert result.returncode == 2
    assert f"field {field}" in result.stderr.decode()


def test_api_and_worker_as_separate_processes(tmp_path: Path) -> None:
    """The split deployment: a stateless API process and a worker share the database."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/split.db"}
    assert payport("migrate", env=env).returncode == 0
    worker = subprocess.Popen(
        [sys.executable, "-m", "payport", "worker"],
        cwd=ROOT,
        env=os.environ | env,
        stderr=subprocess.PIPE,
    )
    try:
        with payport_server(env, command="api") as port:
            base = f"http://127.0.0.1:{port}"
            for i in range(20):
                response = httpx.post(f"{base}/api/v1/commands", json=envelope(f"split-{i}"))
                assert response.status_code == 202
            statuses: set[str] = set()
            for _ in range(150):
                statuses = {
                    httpx.get(f"{base}/payment/split-{i}/status").json()
                    .get("payment", {}).get("status", "MISSING")
                    for i in range(20)
                }  # fmt: skip
                if statuses == {"AUTHORIZED"}:
                    break
                subprocess.run(["sleep", "0.1"], check=True)
            assert statuses == {"AUTHORIZED"}
    finally:
        worker.terminate()
        _, log = worker.communicate(timeout=15)
        assert worker.returncode == 0, log.decode()


def test_stripe_without_a_secret_key_is_refused() -> None:
    result = payport("migrate", env={"PAYPORT_PROVIDER": "stripe"})
    assert result.returncode == 2
    assert "STRIPE_SECRET_KEY" in result.stderr.decode()
