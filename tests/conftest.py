"""Shared fixtures: real SQLite and PostgreSQL databases, and payport wired as in production.

Every behaviour test that takes `harness` runs once per database. PostgreSQL
comes from TEST_DATABASE_URL (default the CI machine's); each session gets a
fresh database of its own. Under CI=true a PostgreSQL that cannot be reached
fails the run; elsewhere those tests are reported as skipped, never passed.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from payport.migrate import upgrade
from tests.harness import Harness

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


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
        message = f"PostgreSQL at {admin} is not reachable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message + " (set CI=true to make this a failure)")
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
async def harness(database_url: str) -> AsyncIterator[Harness]:
    async with Harness.started(database_url) as running:
        yield running
