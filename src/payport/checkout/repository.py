"""Queries for checkout payments and order calls; no decisions here."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.checkout.models import CheckoutPayment


async def get(
    session: AsyncSession, payment_id: str, *, for_update: bool = False
) -> CheckoutPayment | None:
    query = select(CheckoutPayment).where(CheckoutPayment.id == payment_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_by_order_id(
    session: AsyncSession, order_id: str, *, for_update: bool = False
) -> CheckoutPayment | None:
    query = select(CheckoutPayment).where(CheckoutPayment.order_id == order_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_by_session_id(
    session: AsyncSession, session_id: str, *, for_update: bool = False
) -> CheckoutPayment | None:
    query = select(CheckoutPayment).where(CheckoutPayment.session_id == session_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_by_intent_id(
    session: AsyncSession, intent_id: str, *, for_update: bool = False
) -> CheckoutPayment | None:
    query = select(CheckoutPayment).where(CheckoutPayment.payment_intent_id == intent_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()
