"""payport's ledger API under /api/v1: balances and journal entries, in minor units."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from payport.http import FastJSONResponse, RuntimeDep
from payport.ledger import repository, schemas
from payport.ledger.accounts import Account

router = APIRouter(prefix="/api/v1", tags=["ledger"])


@router.get(
    "/balances/{account:path}",
    summary="An account's balance per currency",
    response_model=schemas.AccountBalance,
)
async def get_balance(account: str, runtime: RuntimeDep) -> JSONResponse:
    """`account` is a code: `customer:{user_id}`, `runner:{user_id}`, `hold:{payment_id}`,
    `escrow:{payment_id}`, `platform_fees`, `refunds`. No activity yet: no balances."""
    code = Account.parse(account).code
    rows = await repository.balance_of(runtime.db, code)
    return FastJSONResponse(schemas.account_balance(code, rows).model_dump())


@router.get(
    "/ledger/entries",
    summary="Journal entries, newest first",
    response_model=schemas.EntryList,
)
async def list_entries(
    runtime: RuntimeDep,
    account: str | None = None,
    payment_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: Annotated[int | None, Query(ge=1)] = None,
) -> JSONResponse:
    """Filter by an account code and/or a payment; page with `starting_after` = last id seen."""
    code = Account.parse(account).code if account is not None else None
    async with runtime.db.read() as session:
        rows = await repository.list_entries(
            session,
            account=code,
            payment_id=payment_id,
            limit=limit + 1,
            starting_after=starting_after,
        )
        page = rows[:limit]
        postings = await repository.postings_of(session, [row.id for row in page])
    data = [schemas.entry(row, postings.get(row.id, [])) for row in page]
    return FastJSONResponse(schemas.EntryList(data=data, has_more=len(rows) > limit).model_dump())
