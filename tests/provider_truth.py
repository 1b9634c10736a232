"""Read the provider's own records, to check payport against the provider's truth.

The sandbox keeps its objects in payport's database; Stripe (localstripe in tests) is
asked through its list API with the key payport runs with.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from payport.providers.sandbox import SandboxProvider
from payport.providers.sandbox.models import SandboxObject
from payport.runtime import Runtime

_PAGE = 100


async def provider_objects(runtime: Runtime, object_type: str) -> list[dict[str, Any]]:
    """Every object of a kind (payment_intent, charge, refund, transfer) the provider holds."""
    if isinstance(runtime.provider, SandboxProvider):
        return await _sandbox_objects(runtime, object_type)
    return await _stripe_objects(runtime, object_type)


async def provider_count(runtime: Runtime, object_type: str) -> int:
    return len(await provider_objects(runtime, object_type))


async def provider_intent(runtime: Runtime, intent_id: str) -> dict[str, Any]:
    """A PaymentIntent as the provider has it now."""
    return dict((await runtime.provider.retrieve_payment_intent(intent_id)).raw)


async def by_payment(runtime: Runtime, object_type: str) -> dict[str, list[dict[str, Any]]]:
    """Provider objects grouped by the payment_id payport put in their metadata."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for obj in await provider_objects(runtime, object_type):
        payment_id = (obj.get("metadata") or {}).get("payment_id")
        if payment_id:
            grouped[payment_id].append(obj)
    return grouped


async def _sandbox_objects(runtime: Runtime, object_type: str) -> list[dict[str, Any]]:
    async with runtime.db.read() as session:
        rows = (
            await session.execute(
                select(SandboxObject.data).where(SandboxObject.object_type == object_type)
            )
        ).scalars()
        return [orjson.loads(row) for row in rows]


async def _stripe_objects(runtime: Runtime, object_type: str) -> list[dict[str, Any]]:
    settings = runtime.settings
    assert settings.stripe_api_base and settings.stripe_secret_key
    key = settings.stripe_secret_key.get_secret_value()
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": _PAGE}
    async with httpx.AsyncClient(
        base_url=settings.stripe_api_base, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        while True:
            response = await client.get(f"/v1/{object_type}s", params=params)
            response.raise_for_status()
            page = response.json()
            found += page["data"]
            if not page["has_more"] or not page["data"]:
                return found
            params["starting_after"] = page["data"][-1]["id"]
