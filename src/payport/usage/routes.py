"""Usage routes: record (one or a batch), per-period aggregates, plans' metered prices."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from payport.billing.plans import get_plan
from payport.billing.schemas import as_utc, parse_body, read_json
from payport.billing.subscriptions import get_subscription
from payport.billing.views import iso
from payport.http import FastJSONResponse, RuntimeDep, documented_body
from payport.usage import service
from payport.usage.models import MeteredPrice
from payport.usage.schemas import MeteredPriceBody, UsageBatchBody, UsageEventBody

router = APIRouter(prefix="/api/v1", tags=["usage"])


def _price_view(price: MeteredPrice) -> dict[str, Any]:
    return {
        "object": "metered_price",
        "id": price.id,
        "plan_id": price.plan_id,
        "metric": price.metric,
        "aggregation": price.aggregation,
        "unit_amount_minor": price.unit_amount_minor,
        "currency": price.currency,
    }


@router.post(
    "/usage",
    status_code=201,
    summary='Record usage: one event, or {"events": [...]}; idempotent by event_id',
    openapi_extra=documented_body(UsageBatchBody),
)
async def record_usage(request: Request, runtime: RuntimeDep) -> JSONResponse:
    raw = await request.body()
    if "events" in read_json(raw):
        events = parse_body(UsageBatchBody, raw).events
    else:
        events = [parse_body(UsageEventBody, raw)]
    async with runtime.db.transaction() as session:
        result = await service.record_usage(session, events, clock=runtime.billing.clock)
    return FastJSONResponse(
        {"object": "usage_ingest", "received": len(events), "accepted": result.accepted,
         "duplicates": result.duplicates},
        status_code=201,
    )  # fmt: skip


@router.get(
    "/usage/subscriptions/{subscription_id}",
    summary="Usage per metric for a period (default: the current one): sum, max, count, last",
)
async def usage_summary(
    subscription_id: str,
    runtime: RuntimeDep,
    start: datetime | None = None,
    end: datetime | None = None,
) -> JSONResponse:
    async with runtime.db.read() as session:
        subscription = await get_subscription(session, subscription_id)
        since = as_utc(start) if start else subscription.current_period_start
        until = as_utc(end) if end else subscription.current_period_end
        totals = await service.aggregate(session, subscription_id, start=since, end=until)
    metrics = {
        metric: {"sum": t.sum, "max": t.max, "count": t.count, "last": t.last}
        for metric, t in sorted(totals.items())
    }
    return FastJSONResponse(
        {"object": "usage_summary", "subscription_id": subscription_id,
         "period_start": iso(since), "period_end": iso(until), "metrics": metrics}
    )  # fmt: skip


@router.post(
    "/plans/{plan_id}/metered_prices",
    status_code=201,
    summary="Charge a plan's subscribers per unit of a metric",
    openapi_extra=documented_body(MeteredPriceBody),
)
async def add_metered_price(plan_id: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
    body = parse_body(MeteredPriceBody, await request.body())
    async with runtime.db.transaction() as session:
        plan = await get_plan(session, plan_id)
        price = await service.add_metered_price(session, plan, body)
        view = _price_view(price)
    return FastJSONResponse(view, status_code=201)


@router.get("/plans/{plan_id}/metered_prices", summary="A plan's metered prices")
async def list_metered_prices(plan_id: str, runtime: RuntimeDep) -> JSONResponse:
    async with runtime.db.read() as session:
        await get_plan(session, plan_id)
        prices = await service.metered_prices(session, plan_id)
    return FastJSONResponse({"object": "list", "data": [_price_view(p) for p in prices]})
