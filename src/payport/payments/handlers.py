"""Dispatch a command envelope to its handler.

Each handler runs as: a short transaction that records the command in the
inbox (or answers a duplicate from the record), the provider call outside any
transaction with a key derived from the cause, and a short transaction that
applies the result and writes the outcome event. A crash anywhere repeats the
provider call with the same key, which the provider answers from its record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from payport.messaging.envelope import Envelope
from payport.payments.authorize import authorize
from payport.payments.commands import Outcome, PaymentsContext
from payport.payments.release import capture, release
from payport.payments.revert import revert

Handler = Callable[[PaymentsContext, Envelope, str | None], Awaitable[Outcome]]

HANDLERS: dict[str, Handler] = {
    "authorize_payment": authorize,
    "release_payment": release,
    "revert_payment": revert,
    # Not part of the wire contract: payport's own API captures without a transfer.
    "capture_payment": capture,
}


async def handle_command(
    ctx: PaymentsContext, envelope: Envelope, *, source_ref: str | None = None
) -> Outcome:
    outcome = await HANDLERS[envelope.type](ctx, envelope, source_ref)
    ctx.on_commit()
    return outcome


__all__ = ["HANDLERS", "Outcome", "PaymentsContext", "handle_command"]
