"""Seed 003's 21-step flow (scripts/seed003_flow.sh) against a real `payport serve`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bench.server import ROOT, payport_server

SCRIPT = ROOT / "scripts" / "seed003_flow.sh"


def test_all_21_steps_of_seed_003_pass_against_payport_serve(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/payport.db"}
    with payport_server(env) as port:
        result = subprocess.run(
            ["bash", str(SCRIPT)],
            env=os.environ | {"PAYPORT": f"http://127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("PASS")] == [
        str(n) for n in range(21)
    ]
    assert lines[-1] == "21/21 passed"
