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
from dataclasses import dataclass
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
def _process(
    args: list[str], port: int, ready_path: str, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python -m ARGS` until it answers `ready_path`; SIGTERM and wait on the way out."""
    process = subprocess.Popen(
        [sys.executable, "-m", *args], env=os.environ | env, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    try:
        wait_healthy(port, ready_path)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


@contextlib.contextmanager
def _server(args: list[str], port: int, ready_path: str, env: dict[str, str]) -> Iterator[int]:
    with _process(args, port, ready_path, env):
        yield port


@contextlib.contextmanager
def payport_server(env: dict[str, str], *, command: str = "serve") -> Iterator[int]:
    """`payport serve` (or `api`) on a free port."""
    with payport_process(env, command=command) as running:
        yield running.port


@dataclass(frozen=True)
class Running:
    port: int
    pid: int


@contextlib.contextmanager
def payport_process(env: dict[str, str], *, command: str = "serve") -> Iterator[Running]:
    """`payport serve` (or `api`, `worker`) on a free port, with its pid (for CPU time)."""
    port = free_port()
    settings = {"PORT": str(port), "PAYPORT_LOG_LEVEL": "WARNING"} | env
    with _process(["payport", command], port, "/health", settings) as process:
        yield Running(port, process.pid)


@contextlib.contextmanager
def payport_workers(env: dict[str, str], count: int) -> Iterator[list[int]]:
    """`count` extra `payport worker` processes (no HTTP: the caller knows when they joined)."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "payport", "worker"],
            env=os.environ | {"PAYPORT_LOG_LEVEL": "WARNING"} | env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=20)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by `pid` and every live process under it."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for tree_pid in _tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{tree_pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


@contextlib.contextmanager
def bare_server() -> Iterator[int]:
    """The baseline app, served by uvicorn the same way."""
    port = free_port()
    args = ["uvicorn", "bench.bare_app:app", "--port", str(port), "--log-level", "warning"]
    with _server(args, port, "/payment/x/status", {}) as running:
        yield running
