"""Billing runs on SQLite and PostgreSQL with the local transport and the sandbox provider."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.billing.helpers import Billing
from tests.harness import Harness


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    async with Harness.started(database_url) as running:
        yield running


@pytest.fixture
def billing(harness: Harness) -> Billing:
    return Billing(harness)
