"""Taking in one provider webhook: verify the raw body, store it once, answer.

The HTTP route and the sandbox's in-process delivery both come through here,
so a sandbox event passes exactly the checks a Stripe event passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from payport.errors import PayportError
from payport.webhooks.service import EventRecorder, parse_event
from payport.webhooks.signature import verify_signature


@dataclass(frozen=True, slots=True)
class Receipt:
    status: int
    body: dict[str, Any]
    stored: bool  # new: the processor has work


async def receive_webhook(
    body: bytes,
    signature: str | None,
    *,
    secrets: list[str],
    tolerance_s: int,
    recorder: EventRecorder,
) -> Receipt:
    try:
        verify_signature(body, signature, secrets, tolerance_s=tolerance_s)
        parsed = parse_event(body)
    except PayportError as error:
        return Receipt(
            400, {"success": False, "error": error.code, "message": error.message}, stored=False
        )
    created = await recorder.record(parsed, body)
    return Receipt(200, {"received": True, "duplicate": not created}, stored=created)
