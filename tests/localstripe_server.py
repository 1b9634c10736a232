"""localstripe for tests, run behind tests/localstripe_compat.py on a free 127.0.0.1 port.

`start_localstripe()` starts it as a subprocess (in memory only, nothing persisted) and
waits until it answers; `wipe()` empties it between tests; `stop()` ends it. A localstripe
that cannot start skips the tests that need it with the reason, and under CI=true fails
the run instead, so a broken fake never passes as green.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from bench.server import free_port

ROOT = Path(__file__).resolve().parent.parent
_START_ATTEMPTS = 3


class LocalStripeUnavailable(RuntimeError):
    """localstripe could not be started or did not answer."""


@dataclass
class LocalStripe:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def wipe(self) -> None:
        """Forget every object and idempotency record (localstripe's `DELETE /_config/data`)."""
        httpx.delete(f"{self.url}/_config/data", timeout=5.0).raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until_ready(self, timeout_s: float) -> None:
        """Poll until it answers; the probe is the wipe, which has no other effect."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LocalStripeUnavailable(
                    f"localstripe exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                self.wipe()
                return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise LocalStripeUnavailable(
            f"localstripe did not answer within {timeout_s:.0f} s:\n{self.log_tail()}"
        )


def start_localstripe(log_dir: Path, *, timeout_s: float = 20.0) -> LocalStripe:
    """Start localstripe with the compatibility layer; retried if the port was taken meanwhile."""
    error = LocalStripeUnavailable("localstripe was not started")
    for attempt in range(_START_ATTEMPTS):
        port = free_port()
        log_path = log_dir / f"localstripe-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.localstripe_compat", "--port", str(port)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = LocalStripe(f"http://127.0.0.1:{port}", process, log_path)
        try:
            server.wait_until_ready(timeout_s)
        except LocalStripeUnavailable as exc:
            server.stop()
            error = exc
            continue
        return server
    raise error


def start_or_skip(log_dir: Path) -> LocalStripe:
    """The session's localstripe; skip without it, or fail under CI=true."""
    try:
        return start_localstripe(log_dir)
    except (LocalStripeUnavailable, OSError) as exc:
        message = f"localstripe could not be started: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message + " (set CI=true to make this a failure)")
