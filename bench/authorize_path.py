"""The authorize path in-process: one command at a time, no broker, no background loops.

Prints the p50 of a whole command and of each coalesced phase (start, the
sandbox's own transaction, settle) on PostgreSQL with an instant sandbox. It
isolates payport's database work from Kafka and from the machine's noise; the
Kafka bench measures the rest.

Under callgrind it also counts instructions for the measured commands only (the
set-up and migrations are left out), which repeat to within ~0.3 % between runs on a
busy machine, so a small change in per-command cost shows:

    BENCH_CALLGRIND=1 valgrind --tool=callgrind --instr-atstart=no \\
        --callgrind-out-file=/tmp/authorize.%p .venv/bin/python -m bench.authorize_path
    callgrind_annotate /tmp/authorize.<pid> | grep 'PROGRAM TOTALS'

Environment: BENCH_AUTHORIZE_COMMANDS (default 400 here, use ~100 under callgrind).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson

from bench.kafka_bench import envelope
from bench.pg import fresh_database
from payport.coalesce import Coalescer
from payport.config import Settings
from payport.messaging.envelope import parse_envelope
from payport.payments.handlers import handle_command
from payport.runtime import Runtime

COMMANDS = int(os.environ.get("BENCH_AUTHORIZE_COMMANDS", "400"))
UNDER_CALLGRIND = os.environ.get("BENCH_CALLGRIND") == "1"
_phases: dict[str, list[float]] = defaultdict(list)


def _time_each_phase() -> None:
    """Wrap the coalescer's batch runner to note each phase's wall time (a bench probe)."""
    run = Coalescer._run

    async def timed(self: Coalescer[Any, Any], batch: list[Any]) -> None:
        started = time.perf_counter()
        try:
            await run(self, batch)
        finally:
            name = getattr(getattr(self._run_batch, "func", None), "__name__", "sandbox")
            _phases[name].append(time.perf_counter() - started)

    Coalescer._run = timed  # type: ignore[method-assign]


async def _toggle_callgrind(on: bool) -> None:
    """Start or stop callgrind's counting; it takes effect while this process runs on."""
    if UNDER_CALLGRIND:
        switch = "on" if on else "off"
        control = await asyncio.create_subprocess_exec(
            "callgrind_control", "-i", switch, str(os.getpid()), stdout=asyncio.subprocess.DEVNULL
        )
        await asyncio.sleep(3)  # callgrind answers between this process's own steps
        await control.wait()


async def _authorize(runtime: Runtime, label: str) -> float:
    order_id = f"{label}-{uuid.uuid4().hex[:12]}"
    command = parse_envelope(orjson.dumps(envelope(order_id, str(uuid.uuid4()))))
    started = time.perf_counter()
    await handle_command(runtime.ctx, command, source_ref=f"bench:{order_id}")
    return time.perf_counter() - started


def _p50_ms(values: Sequence[float]) -> float:
    return statistics.median(values) * 1000


async def main() -> None:
    _time_each_phase()
    async with fresh_database() as url:
        settings = Settings(_env_file=None, DATABASE_URL=url, PAYPORT_SANDBOX_LATENCY_MS=0)  # type: ignore[call-arg]
        runtime = Runtime(settings)
        try:
            for _ in range(20):  # warm caches and prepared statements outside the count
                await _authorize(runtime, "warm")
            _phases.clear()
            await _toggle_callgrind(True)
            totals = [await _authorize(runtime, "bench") for _ in range(COMMANDS)]
            await _toggle_callgrind(False)
        finally:
            await runtime.db.dispose()
    print(f"{COMMANDS} authorizations, one at a time: p50 {_p50_ms(totals):.2f} ms")
    for name, values in sorted(_phases.items()):
        print(f"  {name:14s} p50 {_p50_ms(values):.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
