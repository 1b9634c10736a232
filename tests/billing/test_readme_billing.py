"""The README's billing walkthrough, run as written against a real `payport serve` process."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from bench.server import ROOT, payport_server

README = ROOT / "README.md"


def billing_walkthrough() -> str:
    start, end = "<!-- billing-walkthrough:start -->", "<!-- billing-walkthrough:end -->"
    block = re.search(rf"{start}\s*```bash\n(.*?)```\s*{end}", README.read_text(), re.S)
    assert block, "README lost its billing walkthrough block"
    return block.group(1)


def test_readme_billing_walkthrough_runs_as_written(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/payport.db"}
    with payport_server(env) as port:
        script = billing_walkthrough().replace("http://127.0.0.1:3003", f"http://127.0.0.1:{port}")
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    printed = result.stdout.splitlines()
    assert "past_due" in printed and "active" in printed
    for line in (
        "INV-2026-000001 2026-01-15 paid 2999 paid 2999 | succeeded",
        "INV-2026-000003 2026-03-15 paid 2999 paid 2999 | succeeded",
        "INV-2026-000004 2026-04-15 paid 6677 paid 6677 | failed failed succeeded",
        "    proration -2515 Unused time on 1 x Pro Plan",
        "    proration 4193 Remaining time on 1 x Team Plan",
        "    plan 4999 1 x Team Plan (monthly)",
    ):
        assert line in printed, result.stdout
    balances = printed[printed.index("    plan 4999 1 x Team Plan (monthly)") + 1 :][:3]
    assert balances == ["-15674", "18189", "-2515"], result.stdout
    events = printed[-1].split()
    assert events.count("invoice.payment_failed") == 2
    assert events.count("invoice.paid") == 4
