"""`payport worker` runs on the same event loop as `payport serve` (uvicorn picks uvloop)."""

from __future__ import annotations

import asyncio

from payport.cli import _run_on_fastest_loop


def test_the_worker_runs_its_loop_on_uvloop() -> None:
    seen: list[str] = []

    async def note_loop() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)

    _run_on_fastest_loop(note_loop())
    assert seen and seen[0].startswith("uvloop"), seen
