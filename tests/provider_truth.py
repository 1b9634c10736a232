"""Read the sandbox provider's own records, to check payport against the provider's truth."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from sqlalchemy import select

from payport.providers.sandbox.models import SandboxObject
from payport.runtime import Runtime


async def provider_objects(runtime: Runtime, object_type: str) -> list[dict[str, Any]]:
    async with runtime.db.read() as session:
        rows = (
            await session.execute(
                select(SandboxObject.data).where(SandboxObject.object_type == object_type)
            )
        ).scalars()
        return [orjson.loads(row) for row in rows]


async def by_payment(runtime: Runtime, object_type: str) -> dict[str, list[dict[str, Any]]]:
    """Provider objects grouped by the payment_id payport put in their metadata."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for obj in await provider_objects(runtime, object_type):
        payment_id = (obj.get("metadata") or {}).get("payment_id")
        if payment_id:
            grouped[payment_id].append(obj)
    return grouped
