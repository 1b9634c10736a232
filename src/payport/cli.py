"""The `payport` command: serve, api, worker, migrate, send, events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from payport.config import ConfigError, Settings, load_settings
from payport.ledger.cli import ledger_app
from payport.payments.reconcile_cli import reconcile_app

app = typer.Typer(help="payport: escrow payments for event-driven services.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(reconcile_app)
log = logging.getLogger("payport")


def _settings(**overrides: object) -> Settings:
    """Load settings or stop with one line naming the bad variable."""
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as error:
        typer.echo(f"payport: invalid configuration: {error}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
    return settings


def _serve_http(settings: Settings, *, run_worker: bool) -> None:
    import uvicorn

    from payport.app import create_app

    uvicorn.run(
        create_app(settings, run_worker=run_worker),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=8,
    )


HostOption = Annotated[str | None, typer.Option(help="Interface to bind (HOST).")]
PortOption = Annotated[int | None, typer.Option(help="Port to bind (PORT).")]


@app.command()
def serve(host: HostOption = None, port: PortOption = None) -> None:
    """API, command worker and outbox relay in one process (migrates first)."""
    settings = _settings(HOST=host, PORT=port)
    from payport.migrate import upgrade

    upgrade(settings.database_url)
    typer.echo(
        f"payport listening on http://{settings.host}:{settings.port} "
        f"(provider={settings.provider}, transport={settings.transport})"
    )
    _serve_http(settings, run_worker=True)


@app.command()
def api(host: HostOption = None, port: PortOption = None) -> None:
    """Only the HTTP API (run `payport worker` beside it)."""
    _serve_http(_settings(HOST=host, PORT=port), run_worker=False)


@app.command()
def worker() -> None:
    """Only the command worker, outbox relay and webhook processor."""
    settings = _settings()
    _run_on_fastest_loop(_run_worker(settings))


def _run_on_fastest_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where installed (uvicorn[standard] brings it, and `serve` runs on it under
    uvicorn), so a worker process spends no more CPU per command than `serve` does."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop has no build for this platform
        asyncio.run(main)
        return
    uvloop.run(main)


async def _run_worker(settings: Settings) -> None:
    from payport.runtime import Runtime

    runtime = Runtime(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runtime.start_worker()
    runtime.settle_heap()
    log.info("worker started transport=%s provider=%s", settings.transport, settings.provider)
    await stop.wait()
    log.info("worker stopping: finishing in-flight commands")
    await runtime.stop()


@app.command()
def migrate() -> None:
    """Apply database migrations to DATABASE_URL."""
    settings = _settings()
    from payport.migrate import upgrade

    upgrade(settings.database_url)
    typer.echo("migrations applied")


@app.command()
def send(
    file: Annotated[str, typer.Argument(help="A JSON command envelope file, or - for stdin.")],
) -> None:
    """Put a command envelope on the configured transport."""
    settings = _settings()
    raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    from payport.errors import PayportError
    from payport.messaging.envelope import parse_envelope

    try:
        envelope = parse_envelope(raw)
    except PayportError as error:
        typer.echo(f"payport: rejected: {error.message} (field {error.field})", err=True)
        raise typer.Exit(2) from None
    asyncio.run(_send(settings, envelope, raw))
    typer.echo(orjson.dumps({"accepted": True, "correlation_id": envelope.correlation_id}))


async def _send(settings: Settings, envelope: object, raw: bytes) -> None:
    from payport.config import TransportName
    from payport.messaging.envelope import Envelope

    assert isinstance(envelope, Envelope)
    if settings.transport is TransportName.KAFKA:
        from payport.messaging.kafka import KafkaCommandBus, KafkaLink

        link = KafkaLink(settings)
        try:
            await KafkaCommandBus(link).submit(envelope, raw)
        finally:
            await link.aclose()
        return
    from payport.db import Database
    from payport.messaging.bus import LocalCommandBus

    db = Database(settings.database_url, pool_size=1)
    try:
        await LocalCommandBus(db).submit(envelope, raw)
    finally:
        await db.dispose()


@app.command()
def events(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    after: Annotated[
        int,
        typer.Option(
            help="Start after this cursor (local transport; Kafka starts at the beginning)."
        ),
    ] = 0,
) -> None:
    """Print published events as JSON lines."""
    settings = _settings()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_print_events(settings, after=after, follow=follow))


async def _print_events(settings: Settings, *, after: int, follow: bool) -> None:
    from payport.config import TransportName

    if settings.transport is TransportName.KAFKA:
        from payport.messaging.kafka import read_topic

        async for record in read_topic(settings, settings.events_topic, follow=follow):
            sys.stdout.write((record.value or b"").decode() + "\n")
            sys.stdout.flush()
        return
    from payport.db import Database
    from payport.messaging.local import list_events

    db = Database(settings.database_url, pool_size=1)
    try:
        while True:
            async with db.read() as session:
                batch, after = await list_events(session, after=after, limit=500)
            for event in batch:
                sys.stdout.write(orjson.dumps(event).decode() + "\n")
            sys.stdout.flush()
            if not follow:
                return
            if not batch:
                await asyncio.sleep(0.2)
    finally:
        await db.dispose()


def main() -> None:
    app()
