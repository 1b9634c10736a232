"""`payport ledger …`: the ledger's commands (registered on the main CLI as `ledger`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from payport.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:  # the database and checker load only when a command runs: `--help` stays fast
    from payport.ledger.check import Report

ledger_app = typer.Typer(no_args_is_help=True)


@ledger_app.callback()
def ledger() -> None:
    """The double-entry ledger: check that every cent adds up."""


ProviderOption = Annotated[
    bool,
    typer.Option(
        "--provider",
        help="Also compare captured, refunded and transferred totals with the provider.",
    ),
]


@ledger_app.command("check")
def check_command(provider: ProviderOption = False) -> None:
    """Verify every ledger invariant; exit 1 naming the offending payments."""
    settings = _settings()
    report = asyncio.run(_check(settings, with_provider=provider))
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
    for problem in report.problems:
        typer.echo(str(problem))
    if not report.ok:
        names = ", ".join(report.payment_ids) or "none named"
        typer.echo(
            f"ledger check FAILED: {len(report.problems)} problem(s); payments: {names}", err=True
        )
        raise typer.Exit(1)
    typer.echo(f"ledger check OK: {report.entries} entries, {report.payments} payments")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        typer.echo(f"payport: invalid configuration: {error}", err=True)
        raise typer.Exit(2) from None


async def _check(settings: Settings, *, with_provider: bool) -> Report:
    from payport.db import Database
    from payport.ledger.check import check

    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        if not with_provider:
            return await check(db)
        from payport.runtime import build_provider  # only now: it brings up a provider

        provider = build_provider(settings, db)
        try:
            return await check(db, provider=provider)
        finally:
            await provider.aclose()
    finally:
        await db.dispose()
