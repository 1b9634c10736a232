"""The billing API under /api/v1 (seed 003's routes): thin handlers over the services.

Bodies are read raw and parsed with exact decimals (see schemas.py); each
change commits, then whatever it made due now (a first invoice, an
always_invoice proration, a retry on a new card) is charged before answering.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing import plans, subscriptions
from payport.billing.clock import get_test_clock, new_id, time_of
from payport.billing.invoices import lines_of
from payport.billing.models import Invoice, PaymentAttempt, Subscription, TestClock
from payport.billing.periods import BillingCycle
from payport.billing.renewals import BillingEngine, InvoicePayment
from payport.billing.schemas import (
    AdvanceBody,
    CancelBody,
    InvalidRequest,
    PayInvoiceBody,
    PlanBody,
    SubscriptionBody,
    SubscriptionUpdateBody,
    TestClockBody,
    as_utc,
    parse_body,
)
from payport.billing.views import (
    clock_view,
    invoice_view,
    payment_error,
    plan_view,
    subscription_view,
)
from payport.errors import NotFound, ProviderUnavailable
from payport.http import FastJSONResponse, RuntimeDep, documented_body
from payport.providers.sandbox import SandboxProvider
from payport.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["billing"])
_MAX_ADVANCE = timedelta(days=2 * 366)


def _engine(runtime: Runtime) -> BillingEngine:
    return runtime.billing


# --- plans -----------------------------------------------------------------------------------


@router.post(
    "/plans", status_code=201, summary="Create a plan", openapi_extra=documented_body(PlanBody)
)
async def create_plan(request: Request, runtime: RuntimeDep) -> JSONResponse:
    body = parse_body(PlanBody, await request.body())
    plan = plans.build_plan(body, default_currency=runtime.settings.default_currency)
    async with runtime.db.transaction() as session:
        await plans.create_plan(session, plan)
    runtime.outbox_ready.notify()
    return FastJSONResponse(plan_view(plan), status_code=201)


@router.get("/plans/{plan_id}", summary="Retrieve a plan")
async def get_plan(plan_id: str, runtime: RuntimeDep) -> JSONResponse:
    async with runtime.db.read() as session:
        plan = await plans.get_plan(session, plan_id)
    return FastJSONResponse(plan_view(plan))


@router.get("/plans", summary="List plans, newest first")
async def list_plans(
    runtime: RuntimeDep,
    tier: str | None = None,
    billing_cycle: BillingCycle | None = None,
    currency: str | None = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: str | None = None,
) -> JSONResponse:
    async with runtime.db.read() as session:
        rows = await plans.list_plans(
            session,
            tier=tier,
            billing_cycle=billing_cycle.value if billing_cycle else None,
            currency=currency,
            active=active,
            limit=limit + 1,
            starting_after=starting_after,
        )
    return FastJSONResponse(
        {
            "object": "list",
            "data": [plan_view(plan) for plan in rows[:limit]],
            "has_more": len(rows) > limit,
            "url": "/api/v1/plans",
        }
    )


# --- subscriptions ---------------------------------------------------------------------------


async def _subscription_body(session: AsyncSession, subscription: Subscription) -> dict[str, Any]:
    plan = await plans.get_plan(session, subscription.plan_id)
    latest = (
        await session.get(Invoice, subscription.latest_invoice_id)
        if subscription.latest_invoice_id
        else None
    )
    return subscription_view(subscription, plan, latest)


async def _answer(
    runtime: Runtime, subscription_id: str, until: datetime, *, status: int = 200
) -> JSONResponse:
    """Charge what the change made due, then show the subscription as it is now."""
    runtime.outbox_ready.notify()
    try:
        await _engine(runtime).settle(subscription_id, until=until)
    except ProviderUnavailable:
        # The change is committed; the attempt stays pending and the next run repeats it.
        log.warning("billing: provider unavailable subscription_id=%s", subscription_id)
    async with runtime.db.read() as session:
        subscription = await subscriptions.get_subscription(session, subscription_id)
        body = await _subscription_body(session, subscription)
    return FastJSONResponse(body, status_code=status)


@router.post(
    "/subscriptions",
    status_code=201,
    summary="Subscribe a user to a plan",
    openapi_extra=documented_body(SubscriptionBody),
)
async def create_subscription(request: Request, runtime: RuntimeDep) -> JSONResponse:
    body = parse_body(SubscriptionBody, await request.body())
    async with runtime.db.transaction() as session:
        subscription = await subscriptions.create_subscription(
            session, body, clock=_engine(runtime).clock
        )
        started_at = subscription.started_at
    return await _answer(runtime, subscription.id, started_at, status=201)


@router.get("/subscriptions/user/{user_id}", summary="A user's subscriptions, newest first")
async def list_user_subscriptions(user_id: str, runtime: RuntimeDep) -> JSONResponse:
    async with runtime.db.read() as session:
        rows = await subscriptions.subscriptions_of(session, user_id)
        data = [await _subscription_body(session, row) for row in rows]
    return FastJSONResponse(
        {
            "object": "list",
            "user_id": user_id,
            "data": data,
            "has_more": False,
            "url": f"/api/v1/subscriptions/user/{user_id}",
        }
    )


@router.get("/subscriptions/{subscription_id}", summary="Retrieve a subscription")
async def get_subscription(subscription_id: str, runtime: RuntimeDep) -> JSONResponse:
    async with runtime.db.read() as session:
        subscription = await subscriptions.get_subscription(session, subscription_id)
        body = await _subscription_body(session, subscription)
    return FastJSONResponse(body)


@router.put(
    "/subscriptions/{subscription_id}",
    summary="Change plan, quantity, card or cancel_at_period_end",
    openapi_extra=documented_body(SubscriptionUpdateBody),
)
async def update_subscription(
    subscription_id: str, request: Request, runtime: RuntimeDep
) -> JSONResponse:
    body = parse_body(SubscriptionUpdateBody, await request.body())
    async with runtime.db.transaction() as session:
        subscription = await subscriptions.get_subscription(
            session, subscription_id, for_update=True
        )
        now = await time_of(session, subscription, _engine(runtime).clock)
        await subscriptions.update_subscription(session, subscription, body, now=now)
    return await _answer(runtime, subscription_id, now)


@router.post(
    "/subscriptions/{subscription_id}/cancel",
    summary="Cancel now or at the end of the period",
    openapi_extra=documented_body(CancelBody),
)
async def cancel_subscription(
    subscription_id: str, request: Request, runtime: RuntimeDep
) -> JSONResponse:
    body = parse_body(CancelBody, await request.body(), optional=True)
    async with runtime.db.transaction() as session:
        subscription = await subscriptions.get_subscription(
            session, subscription_id, for_update=True
        )
        now = await time_of(session, subscription, _engine(runtime).clock)
        await subscriptions.cancel_subscription(session, subscription, body, now=now)
    return await _answer(runtime, subscription_id, now)


# --- invoices (read side; issue 8 adds creation, PDFs and numbering rules) -------------------


async def _invoice_body(session: AsyncSession, invoice: Invoice) -> dict[str, Any]:
    attempts = await session.scalars(
        select(PaymentAttempt)
        .where(PaymentAttempt.invoice_id == invoice.id)
        .order_by(PaymentAttempt.number)
    )
    return invoice_view(invoice, await lines_of(session, invoice.id), list(attempts))


@router.get("/subscriptions/{subscription_id}/invoices", summary="A subscription's invoices")
async def list_subscription_invoices(subscription_id: str, runtime: RuntimeDep) -> JSONResponse:
    async with runtime.db.read() as session:
        await subscriptions.get_subscription(session, subscription_id)
        rows = await session.scalars(
            select(Invoice)
            .where(Invoice.subscription_id == subscription_id)
            .order_by(Invoice.issued_at, Invoice.number)
        )
        data = [await _invoice_body(session, row) for row in rows]
    return FastJSONResponse(
        {
            "object": "list",
            "data": data,
            "has_more": False,
            "url": f"/api/v1/subscriptions/{subscription_id}/invoices",
        }
    )


@router.get("/invoices/{invoice_id}", summary="Retrieve an invoice with lines and attempts")
async def get_invoice(invoice_id: str, runtime: RuntimeDep) -> JSONResponse:
    async with runtime.db.read() as session:
        invoice = await session.get(Invoice, invoice_id)
        if invoice is None:
            raise NotFound(f"invoice {invoice_id} not found", field="invoice_id")
        body = await _invoice_body(session, invoice)
    return FastJSONResponse(body)


@router.post(
    "/invoices/{invoice_id}/pay",
    summary=(
        "Pay an open invoice: charge `payment_method` (default: the customer's saved card), "
        "or record `paid_out_of_band`. A paid invoice is answered unchanged; draft, void "
        "and uncollectible ones are 409 naming `status`. Every outcome of the charge is "
        "200 with the invoice: declined leaves it `open`, the attempt and "
        "`last_payment_error` carry the decline code; 3-D Secure (with `return_url`) "
        "answers `next_action.redirect_to_url`"
    ),
    openapi_extra=documented_body(PayInvoiceBody),
)
async def pay_invoice(invoice_id: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
    body = parse_body(PayInvoiceBody, await request.body(), optional=True)
    if body.paid_out_of_band and (body.payment_method_id or body.return_url):
        raise InvalidRequest(
            "paid out of band charges nothing: give no payment_method or return_url",
            field="paid_out_of_band",
        )
    payment = InvoicePayment(body.payment_method_id, body.return_url, body.paid_out_of_band)
    outcome = await _engine(runtime).pay_invoice(invoice_id, payment)
    runtime.outbox_ready.notify()
    async with runtime.db.read() as session:
        invoice = await session.get(Invoice, invoice_id)
        assert invoice is not None
        body_out = await _invoice_body(session, invoice)
        attempt = (
            await session.get(PaymentAttempt, outcome.attempt_id) if outcome.attempt_id else None
        )
    url = outcome.next_action_url
    return FastJSONResponse(
        body_out
        | {
            "next_action": {"redirect_to_url": url} if url else None,
            "last_payment_error": payment_error(attempt) if attempt is not None else None,
        }
    )


# --- sandbox test clocks ---------------------------------------------------------------------


def _require_sandbox(runtime: Runtime) -> None:
    """Test clocks move billing time; only the sandbox lets anyone do that."""
    if not isinstance(runtime.provider, SandboxProvider):
        raise NotFound("test clocks exist only with PAYPORT_PROVIDER=sandbox", field="test_clock")


@router.post(
    "/test_clocks",
    status_code=201,
    summary="Create a sandbox test clock",
    openapi_extra=documented_body(TestClockBody),
)
async def create_test_clock(request: Request, runtime: RuntimeDep) -> JSONResponse:
    _require_sandbox(runtime)
    body = parse_body(TestClockBody, await request.body())
    clock = TestClock(
        id=new_id("clock_"), name=body.name, frozen_time=as_utc(body.frozen_time), status="ready"
    )
    async with runtime.db.transaction() as session:
        session.add(clock)
    return FastJSONResponse(clock_view(clock), status_code=201)


@router.get("/test_clocks/{clock_id}", summary="Retrieve a sandbox test clock")
async def get_test_clock_route(clock_id: str, runtime: RuntimeDep) -> JSONResponse:
    _require_sandbox(runtime)
    async with runtime.db.read() as session:
        clock = await get_test_clock(session, clock_id)
    return FastJSONResponse(clock_view(clock))


@router.post(
    "/test_clocks/{clock_id}/advance",
    summary="Move a test clock forward; renewals, retries and cancellations due on the way run",
    openapi_extra=documented_body(AdvanceBody),
)
async def advance_test_clock(clock_id: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
    _require_sandbox(runtime)
    body = parse_body(AdvanceBody, await request.body())
    target = as_utc(body.frozen_time)
    async with runtime.db.read() as session:
        clock = await get_test_clock(session, clock_id)
    if target <= clock.frozen_time:
        raise InvalidRequest("must be later than the clock's frozen_time", field="frozen_time")
    if target - clock.frozen_time > _MAX_ADVANCE:
        raise InvalidRequest("a clock moves at most two years at a time", field="frozen_time")
    steps = await _engine(runtime).advance_clock(clock_id, target)
    runtime.outbox_ready.notify()
    async with runtime.db.read() as session:
        clock = await get_test_clock(session, clock_id)
    return FastJSONResponse(clock_view(clock) | {"steps": steps})
