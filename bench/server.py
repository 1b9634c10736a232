"""Start payport (or the bare baseline app) as a real server process on a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(port: int, path: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not come up")


@contextlib.contextmanager
def _server(args: list[str], port: int, ready_path: str, env: dict[str, str]) -> Iterator[int]:
    """Run `python -m ARGS` until it answers `ready_path`; SIGTERM and wait on the way out."""
    process = subprocess.Popen(
        [sys.executable, "-m", *args], env=os.environ | env, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    try:
        wait_healthy(port, ready_path)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


@contextlib.contextmanager
def payport_server(env: dict[str, str], *, command: str = "serve") -> Iterator[int]:
    """`payport serve` (or `api`) on a free port."""
    port = free_port()
    settings = {"PORT": str(port), "PAYPORT_LOG_LEVEL": "WARNING"} | env
    with _server(["payport", command], port, "/health", settings) as running:
        yield running


@contextlib.contextmanager
def bare_server() -> Iterator[int]:
    """The baseline app, served by uvicorn the same way."""
    port = free_port()
    args = ["uvicorn", "bench.bare_app:app", "--port", str(port), "--log-level", "warning"]
    with _server(args, port, "/payment/x/status", {}) as running:
        yield running
