"""Statistics routes (seed 003) and the service's `/info`: numbers, never secrets."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from payport import __version__
from payport.billing.schemas import InvalidRequest, as_utc
from payport.billing.views import iso
from payport.db import utcnow
from payport.http import FastJSONResponse, RuntimeDep
from payport.money import is_known_currency
from payport.stats import service
from payport.stats.service import Granularity, Window

router = APIRouter(tags=["statistics"])
_DEFAULT_DAYS = 30


def _window(start: datetime | None, end: datetime | None) -> Window:
    """[start, end): default the last 30 days up to now."""
    until = as_utc(end) if end else utcnow()
    since = as_utc(start) if start else until - timedelta(days=_DEFAULT_DAYS)
    if since >= until:
        raise InvalidRequest("start must be before end", field="start")
    return Window(since, until)


def _window_view(window: Window) -> dict[str, Any]:
    return {"start": iso(window.start), "end": iso(window.end)}


@router.get("/api/v1/stats/revenue", summary="Revenue by day or month and currency")
async def revenue_stats(
    runtime: RuntimeDep,
    period: Granularity = Granularity.DAY,
    currency: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> JSONResponse:
    window = _window(start, end)
    code = currency.lower() if currency else None
    if code is not None and not is_known_currency(code):
        raise InvalidRequest(f"unknown currency {currency!r}", field="currency")
    async with runtime.db.read() as session:
        rows = await service.revenue(session, granularity=period, window=window, currency=code)
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        total = totals.setdefault(row["currency"], {"gross_minor": 0, "refunded_minor": 0,
                                                    "net_minor": 0})  # fmt: skip
        for key in total:
            total[key] += row[key]
    return FastJSONResponse(
        {"object": "revenue_stats", "period": period.value, "window": _window_view(window),
         "data": rows, "totals": totals}
    )  # fmt: skip


@router.get("/api/v1/stats/subscriptions", summary="Subscriptions: active, new, churned, MRR, ARR")
async def subscription_stats(
    runtime: RuntimeDep, start: datetime | None = None, end: datetime | None = None
) -> JSONResponse:
    window = _window(start, end)
    async with runtime.db.read() as session:
        body = await service.subscription_stats(session, window=window)
    return FastJSONResponse({"object": "subscription_stats", "window": _window_view(window)} | body)


@router.get("/api/v1/stats", summary="Overall counts and amounts by status")
async def overall_stats(runtime: RuntimeDep) -> JSONResponse:
    async with runtime.db.read() as session:
        body = await service.overall(session)
    return FastJSONResponse({"object": "stats"} | body)


@router.get("/info", tags=["service"], summary="Version and configuration summary (no secrets)")
async def info(runtime: RuntimeDep) -> JSONResponse:
    settings = runtime.settings
    return FastJSONResponse(
        {
            "service": "payport",
            "version": __version__,
            "environment": settings.env.value,
            "database": runtime.db.writer.dialect.name,
            "transport": settings.transport.value,
            "provider": settings.provider.value,
            "default_currency": settings.default_currency,
            "platform_fee_bps": settings.platform_fee_bps,
            "refund_approval_threshold_minor": settings.refund_approval_threshold,
            "billing": {
                "dunning_retry_days": settings.billing_retry_days,
                "dunning_final_action": settings.billing_final_action,
            },
            "stripe_configured": settings.stripe_secret_key is not None,
        }
    )
