"""`payport reconcile`: heal payments left half-way, with a progress bar and a summary."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from payport.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:  # payments and the runtime load only when the command runs
    from payport.payments.reconcile import Summary

reconcile_app = typer.Typer()
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(text: str) -> timedelta:
    """`90`, `90s`, `10m`, `2h`, `1d`: how long a payment must be untouched to be healed."""
    match = _DURATION.match(text)
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration like 30s, 10m, 2h or 1d")
    return timedelta(seconds=int(match[1]) * _UNIT_S[match[2]])


OlderThan = Annotated[
    str,
    typer.Option(
        "--older-than",
        help="Only payments untouched this long (younger ones may still be in flight).",
    ),
]


@reconcile_app.command("reconcile")
def reconcile_command(older_than: OlderThan = "10m") -> None:
    """Ask the provider about every payment (and refund) left half-way, and heal it."""
    age = parse_duration(older_than)
    try:
        settings = load_settings()
    except ConfigError as error:
        typer.echo(f"payport: invalid configuration: {error}", err=True)
        raise typer.Exit(2) from None
    summary = asyncio.run(_run(settings, age))
    _print(summary)
    if summary.counts["errors"]:
        raise typer.Exit(1)


async def _run(settings: Settings, older_than: timedelta) -> Summary:
    from payport.runtime import Runtime  # only now: it brings up a provider

    runtime = Runtime(settings)
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("reconciling", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return await runtime.heal(older_than=older_than, on_progress=advance)
    finally:
        await runtime.stop()


def _print(summary: Summary) -> None:
    table = Table(title="reconcile")
    table.add_column("action")
    table.add_column("payments", justify="right")
    for action, count in summary.as_dict().items():
        table.add_row(action, str(count))
    console = Console()
    if summary.counts:
        console.print(table)
    console.print(f"healed {summary.healed}; {sum(summary.counts.values())} looked at")
