"""Fixtures for the Stripe provider: one localstripe per session, wiped before each test.

localstripe (the session's, from tests/conftest.py) runs behind tests/localstripe_compat.py.
Without localstripe these tests are skipped with the reason; under CI=true they fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import stripe
from pydantic import SecretStr

from payport.providers.stripe import StripeProvider
from tests.harness import STRIPE_SECRET_KEY
from tests.localstripe_server import LocalStripe

SECRET_KEY = STRIPE_SECRET_KEY


@pytest.fixture
def stripe_url(localstripe: LocalStripe) -> str:
    """localstripe's address, emptied for this test."""
    localstripe.wipe()
    return localstripe.url


@pytest.fixture
async def provider(stripe_url: str) -> AsyncIterator[StripeProvider]:
    running = StripeProvider(
        SecretStr(SECRET_KEY), api_base=stripe_url, timeout_s=10.0, max_network_retries=0
    )
    yield running
    await running.aclose()


@pytest.fixture
async def stripe_client(stripe_url: str) -> AsyncIterator[stripe.StripeClient]:
    """The SDK itself, to set up what payport never creates (customers, test cards)
    and to read localstripe's records back."""
    http = stripe.HTTPXClient(timeout=10.0)
    client = stripe.StripeClient(
        SECRET_KEY, base_addresses={"api": stripe_url}, http_client=http, max_network_retries=0
    )
    yield client
    await http.close_async()
