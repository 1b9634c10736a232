"""Invoices, refunds, usage and stats run on SQLite and PostgreSQL, sandbox provider."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.harness import Harness


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    async with Harness.started(database_url) as running:
        yield running
