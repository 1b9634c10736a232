"""The ledger's tests run on SQLite and PostgreSQL with a platform fee, so every split is real.

`harness` is overridden here: the ledger is the same whatever carries the
commands, so these tests run once per database on the local transport.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.harness import Harness

FEE_BPS = 1250  # 12.5 %: 2500 -> fee 312, transfer 2188


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    async with Harness.started(database_url, PLATFORM_FEE_BPS=FEE_BPS) as running:
        yield running


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
