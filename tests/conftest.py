"""Shared fixtures: real SQLite, PostgreSQL and Kafka, and payport wired as in production.

Every behaviour test that takes `harness` runs once per stack: SQLite with the
local transport, PostgreSQL with the local transport, and PostgreSQL with
Kafka (a real Tansu broker), all on the sandbox provider; then SQLite and
PostgreSQL with PAYPORT_PROVIDER=stripe against localstripe, whose webhooks
call payport on a real port. A test that only the sandbox can run (its 3-D
Secure page, its own tables) says so with `@sandbox_only("why")`.
PostgreSQL comes from TEST_DATABASE_URL (default the CI machine's); each
session gets a fresh database of its own. Under CI=true a PostgreSQL, broker
or localstripe that cannot be had fails the run; elsewhere those tests are
reported as skipped, never passed.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from bench.broker import TansuBroker

from payport.migrate import upgrade
from tests.harness import Harness, Stack
from tests.localstripe_server import LocalStripe, start_or_skip

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def _unavailable(message: str) -> None:
    """Fail under CI=true, where every real component must be there; skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message + " (set CI=true to make this a failure)")


def _pg_admin_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_PG)


async def _create_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url, timeout=5)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url, timeout=5)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = Path(tmp_path_factory.mktemp("db")) / "payport.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    admin = _pg_admin_url()
    name = f"payport_t_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_create_database(admin, name))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        _unavailable(f"PostgreSQL at {admin} is not reachable: {exc}")
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    asyncio.run(_drop_database(admin, name))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def empty_database_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database of the same kind with no schema at all, dropped afterwards."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"payport_l_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield database_url.rsplit("/", 1)[0] + f"/{name}"
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    broker = TansuBroker(Path(tmp_path_factory.mktemp("kafka")))
    try:
        broker.start()
    except (OSError, RuntimeError) as exc:
        _unavailable(f"the Tansu Kafka broker could not start: {exc}")
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    """One localstripe (behind tests/localstripe_compat.py) for the session."""
    server = start_or_skip(tmp_path_factory.mktemp("localstripe"))
    yield server
    server.stop()


SANDBOX_STACKS = ["sqlite-local", "postgresql-local", "postgresql-kafka"]
STRIPE_STACKS = ["sqlite-local-stripe", "postgresql-local-stripe"]
STACKS = SANDBOX_STACKS + STRIPE_STACKS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the Stripe stacks of a test marked `sandbox_only`; pytest reports them as
    deselected (never as passed), the reason is in the mark and the README lists each."""
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_stripe = callspec is not None and callspec.params.get("stack") in STRIPE_STACKS
        (left_out if on_stripe and item.get_closest_marker("sandbox_only") else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> Stack:
    """A database, a transport and a provider; Kafka stacks get topics and a group of their
    own, Stripe stacks an emptied localstripe."""
    return stack_named(request, request.param)


def stack_named(request: pytest.FixtureRequest, name: str) -> Stack:
    """The stack one of STACKS names, with the session fixtures it needs."""
    database, transport, *provider = name.split("-")
    url: str = request.getfixturevalue("sqlite_url" if database == "sqlite" else "postgres_url")
    if provider == ["stripe"]:
        return Stack.on_stripe(url, request.getfixturevalue("localstripe"))
    if transport == "local":
        return Stack(url)
    broker: TansuBroker = request.getfixturevalue("kafka_broker")
    return Stack.on_kafka(url, broker.bootstrap)


@pytest.fixture
async def harness(stack: Stack) -> AsyncIterator[Harness]:
    async with stack.started() as running:
        yield running
