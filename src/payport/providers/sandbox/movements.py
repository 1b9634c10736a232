"""Money leaving a captured charge: refunds to the customer, transfers to connected accounts
and transfer reversals, with Stripe's limits on how much each may move."""

from __future__ import annotations

import json
from collections.abc import Mapping

from payport.money import Money
from payport.providers.base import PI_SUCCEEDED, REFUND_REASONS, ProviderInvalidRequest
from payport.providers.sandbox.intents import charge_for_update, intent_for_update
from payport.providers.sandbox.objects import (
    JSON,
    format_amount,
    list_object,
    new_id,
    resource_missing,
    unexpected_state,
    unix,
)
from payport.providers.sandbox.store import RequestContext, dumps


def check_refund_reason(reason: str) -> None:
    if reason not in REFUND_REASONS:
        raise ProviderInvalidRequest(
            f"Invalid reason: must be one of {', '.join(sorted(REFUND_REASONS))}", param="reason"
        )


def check_destination(destination: str) -> None:
    if not destination.startswith("acct_"):
        raise resource_missing("destination", destination, param="destination")


async def refund(
    ctx: RequestContext,
    intent_id: str,
    amount_minor: int | None,
    reason: str,
    metadata: Mapping[str, str],
) -> JSON:
    """Give back part or all of what was captured, never more than is left."""
    pi = await intent_for_update(ctx, intent_id)
    if pi["status"] != PI_SUCCEEDED:
        raise unexpected_state(pi, "refunded")
    charge = await charge_for_update(ctx, pi["latest_charge"])
    remaining = charge["amount_captured"] - charge["amount_refunded"]
    if remaining <= 0:
        raise ProviderInvalidRequest(
            f"Charge {charge['id']} has already been refunded.",
            code="charge_already_refunded", param="amount",
        )  # fmt: skip
    amount = remaining if amount_minor is None else amount_minor
    if amount > remaining:
        currency = charge["currency"]
        raise ProviderInvalidRequest(
            f"Refund amount ({format_amount(amount, currency)}) is greater than unrefunded "
            f"amount on charge ({format_amount(remaining, currency)})",
            code="amount_too_large", param="amount",
        )  # fmt: skip
    refund_obj: JSON = {
        "id": new_id("re_"), "object": "refund", "amount": amount,
        "balance_transaction": new_id("txn_"), "charge": charge["id"], "created": unix(ctx.now),
        "currency": charge["currency"], "metadata": dict(metadata), "payment_intent": pi["id"],
        "reason": reason, "status": "succeeded",
    }  # fmt: skip
    refunded = charge["amount_refunded"] + amount
    charge.update(amount_refunded=refunded, refunded=refunded >= charge["amount_captured"])
    await ctx.store.add(refund_obj, now=ctx.now)
    await ctx.store.save(charge, now=ctx.now)
    await ctx.emit("charge.refunded", charge)
    return refund_obj


async def create_transfer(
    ctx: RequestContext,
    amount: Money,
    destination: str,
    transfer_group: str | None,
    source_transaction: str | None,
    metadata: Mapping[str, str],
) -> JSON:
    """Pay a connected account; with a source charge, only from what that charge still holds."""
    if source_transaction is not None:
        await _check_source_funds(ctx, source_transaction, amount)
    transfer_id = new_id("tr_")
    transfer: JSON = {
        "id": transfer_id, "object": "transfer", "amount": amount.amount_minor,
        "amount_reversed": 0, "balance_transaction": new_id("txn_"), "created": unix(ctx.now),
        "currency": amount.currency, "description": None, "destination": destination,
        "destination_payment": new_id("py_"), "livemode": False, "metadata": dict(metadata),
        "reversals": list_object(f"/v1/transfers/{transfer_id}/reversals"), "reversed": False,
        "source_transaction": source_transaction,
        "source_type": "card", "transfer_group": transfer_group,
    }  # fmt: skip
    await ctx.store.add(transfer, now=ctx.now)
    if source_transaction is not None:
        await _link_to_source(ctx, source_transaction, transfer_id)
    await ctx.emit("transfer.created", transfer)
    return transfer


def _source_state_name(charge_id: str) -> str:
    return f"charge_transfers:{charge_id}"


async def _check_source_funds(ctx: RequestContext, charge_id: str, amount: Money) -> None:
    """Captured, less refunds, less what earlier transfers from it still hold."""
    charge = await ctx.store.get(charge_id, "charge", for_update=True)
    if charge is None:
        raise resource_missing("charge", charge_id, param="source_transaction")
    if amount.currency != charge["currency"]:
        raise ProviderInvalidRequest(
            f"The currency of source_transaction {charge_id} ({charge['currency']}) does not "
            f"match the transfer currency ({amount.currency}).",
            param="currency",
        )  # fmt: skip
    if not charge["captured"]:
        raise _insufficient(charge_id, amount, 0)
    transferred = 0
    for transfer_id in await _linked_transfers(ctx, charge_id):
        earlier = await ctx.store.get(transfer_id, "transfer")
        if earlier is not None:
            transferred += earlier["amount"] - earlier["amount_reversed"]
    available = charge["amount_captured"] - charge["amount_refunded"] - transferred
    if amount.amount_minor > available:
        raise _insufficient(charge_id, amount, available)


def _insufficient(charge_id: str, amount: Money, available: int) -> ProviderInvalidRequest:
    wanted = format_amount(amount.amount_minor, amount.currency)
    left = format_amount(max(available, 0), amount.currency)
    return ProviderInvalidRequest(
        f"Insufficient funds: the transfer amount ({wanted}) exceeds what source_transaction "
        f"{charge_id} still has available ({left}).",
        code="balance_insufficient", param="amount",
    )  # fmt: skip


async def _linked_transfers(ctx: RequestContext, charge_id: str) -> list[str]:
    value = await ctx.store.state(_source_state_name(charge_id))
    linked: list[str] = json.loads(value) if value else []
    return linked


async def _link_to_source(ctx: RequestContext, charge_id: str, transfer_id: str) -> None:
    linked = await _linked_transfers(ctx, charge_id)
    await ctx.store.set_state(_source_state_name(charge_id), dumps([*linked, transfer_id]))


async def reverse_transfer(ctx: RequestContext, transfer_id: str, amount_minor: int | None) -> JSON:
    """Take back part or all of a transfer; never more than is still unreversed."""
    transfer = await ctx.store.get(transfer_id, "transfer", for_update=True)
    if transfer is None:
        raise resource_missing("transfer", transfer_id)
    remaining = transfer["amount"] - transfer["amount_reversed"]
    amount = remaining if amount_minor is None else amount_minor
    if remaining <= 0 or amount > remaining:
        currency = transfer["currency"]
        raise ProviderInvalidRequest(
            f"Reversal amount ({format_amount(amount, currency)}) is greater than the unreversed "
            f"amount of transfer {transfer_id} ({format_amount(remaining, currency)}).",
            code="amount_too_large", param="amount",
        )  # fmt: skip
    reversal: JSON = {
        "id": new_id("trr_"), "object": "transfer_reversal", "amount": amount,
        "balance_transaction": new_id("txn_"), "created": unix(ctx.now),
        "currency": transfer["currency"], "destination_payment_refund": new_id("pyr_"),
        "metadata": {}, "source_refund": None, "transfer": transfer_id,
    }  # fmt: skip
    reversed_total = transfer["amount_reversed"] + amount
    reversals = transfer["reversals"]
    reversals["data"] = [reversal, *reversals["data"]]
    reversals["total_count"] = len(reversals["data"])
    transfer.update(amount_reversed=reversed_total, reversed=reversed_total >= transfer["amount"])
    await ctx.store.add(reversal, now=ctx.now)
    await ctx.store.save(transfer, now=ctx.now)
    await ctx.emit("transfer.reversed", transfer)
    return reversal
