"""The README's walkthrough, run as written against a real `payport serve` process."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
from bench.server import ROOT, payport_server

README = ROOT / "README.md"


def walkthrough_script() -> str:
    text = README.read_text()
    block = re.search(
        r"<!-- walkthrough:start -->\s*```bash\n(.*?)```\s*<!-- walkthrough:end -->", text, re.S
    )
    assert block, "README lost its walkthrough block"
    return block.group(1)


def test_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/payport.db"}
    with payport_server(env) as port:
        base = f"http://127.0.0.1:{port}"
        script = walkthrough_script().replace("http://127.0.0.1:3003", base)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        statuses = {
            order: httpx.get(f"{base}/payment/{order}/status").json()["payment"]["status"]
            for order in ("order-1001", "order-1002", "order-1003", "order-1004")
        }
        history = httpx.get(f"{base}/history/user_bob").json()
    assert statuses == {
        "order-1001": "SUCCEEDED",
        "order-1002": "REVERTED",
        "order-1003": "AUTHORIZED",
        "order-1004": "FAILED",
    }
    assert history == {
        "userId": "user_bob",
        "totalSpent": 0.0,
        "totalEarned": 25.0,
        "spentCount": 0,
        "earnedCount": 1,
    }
    printed = result.stdout
    for line in (
        "payment.authorized walkthrough-1",
        "payment.released",
        "payment.reverted",
        "payment.authorized walkthrough-3",
        "payment.failed walkthrough-4 STRIPE_CARD_ERROR",
    ):
        assert line in printed, printed
