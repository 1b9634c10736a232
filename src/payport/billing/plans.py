"""Plans: what a subscription pays per period, in the plan's currency's minor units."""

from __future__ import annotations

import orjson
from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from payport.billing.clock import new_id
from payport.billing.models import Plan
from payport.billing.schemas import (
    InvalidRequest,
    PlanBody,
    plan_amount_minor,
    requested_currency,
)
from payport.errors import InvalidStatus, NotFound


def build_plan(body: PlanBody, *, default_currency: str) -> Plan:
    currency = requested_currency(body.currency, default_currency)
    return Plan(
        id=body.plan_id or new_id("plan_"),
        name=body.name,
        tier=body.tier,
        description=body.description,
        amount_minor=plan_amount_minor(body, currency),
        currency=currency,
        billing_cycle=body.billing_cycle.value,
        trial_days=body.trial_days,
        features=orjson.dumps(body.features).decode(),
        active=body.active,
    )


async def create_plan(session: AsyncSession, plan: Plan) -> Plan:
    """Store a new plan; an id already taken is a conflict naming `plan_id`."""
    if await session.get(Plan, plan.id) is not None:
        raise InvalidStatus(f"plan {plan.id} already exists", field="plan_id")
    session.add(plan)
    try:
        await session.flush()
    except IntegrityError:
        raise InvalidStatus(f"plan {plan.id} already exists", field="plan_id") from None
    return plan


async def get_plan(session: AsyncSession, plan_id: str, *, field: str = "plan_id") -> Plan:
    plan = await session.get(Plan, plan_id)
    if plan is None:
        raise NotFound(f"plan {plan_id} not found", field=field)
    return plan


async def list_plans(
    session: AsyncSession,
    *,
    tier: str | None,
    billing_cycle: str | None,
    currency: str | None,
    active: bool | None,
    limit: int,
    starting_after: str | None,
) -> list[Plan]:
    """Newest first; `starting_after` is the last plan id of the previous page."""
    query = select(Plan)
    if tier is not None:
        query = query.where(Plan.tier == tier)
    if billing_cycle is not None:
        query = query.where(Plan.billing_cycle == billing_cycle)
    if currency is not None:
        query = query.where(Plan.currency == currency.lower())
    if active is not None:
        query = query.where(Plan.active == active)
    if starting_after is not None:
        cursor = await session.get(Plan, starting_after)
        if cursor is None:
            raise InvalidRequest("unknown starting_after plan", field="starting_after")
        query = query.where(tuple_(Plan.created_at, Plan.id) < (cursor.created_at, cursor.id))
    newest_first = query.order_by(Plan.created_at.desc(), Plan.id.desc())
    rows = await session.scalars(newest_first.limit(limit))
    return list(rows)
