"""The ledger's tests run on SQLite and PostgreSQL with a platform fee, so every split is real.

`harness` is overridden here: the ledger is the same whatever carries the
commands, so these tests run once per database on the local transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.harness import Harness

FEE_BPS = 1250  # 12.5 %: 2500 -> fee 312, transfer 2188


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    async with Harness.started(database_url, PLATFORM_FEE_BPS=FEE_BPS) as running:
        yield running
