"""Queries for payments and the command inbox; no decisions here."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payport.messaging.models import InboxEntry
from payport.payments.models import Payment


async def get(
    session: AsyncSession, payment_id: str, *, for_update: bool = False
) -> Payment | None:
    query = select(Payment).where(Payment.id == payment_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_by_order_id(
    session: AsyncSession, order_id: str, *, for_update: bool = False
) -> Payment | None:
    query = select(Payment).where(Payment.order_id == order_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_by_intent_id(
    session: AsyncSession, intent_id: str, *, for_update: bool = False
) -> Payment | None:
    query = select(Payment).where(Payment.payment_intent_id == intent_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def list_page(
    session: AsyncSession,
    *,
    order_id: str | None,
    customer_id: str | None,
    status: str | None,
    limit: int,
    starting_after: Payment | None,
) -> Sequence[Payment]:
    """Newest first, like Stripe lists; the cursor is the last payment of the previous page."""
    query = select(Payment)
    if order_id:
        query = query.where(Payment.order_id == order_id)
    if customer_id:
        query = query.where(Payment.customer_user_id == customer_id)
    if status:
        query = query.where(Payment.status == status)
    if starting_after is not None:
        query = query.where(
            (Payment.created_at < starting_after.created_at)
            | ((Payment.created_at == starting_after.created_at) & (Payment.id < starting_after.id))
        )
    query = query.order_by(Payment.created_at.desc(), Payment.id.desc()).limit(limit)
    return (await session.execute(query)).scalars().all()


async def get_inbox_entry(session: AsyncSession, command_key: str) -> InboxEntry | None:
    query = select(InboxEntry).where(InboxEntry.command_key == command_key)
    return (await session.execute(query)).scalar_one_or_none()


async def waiting_entries(session: AsyncSession, payment_id: str) -> Sequence[InboxEntry]:
    query = (
        select(InboxEntry)
        .where(InboxEntry.payment_id == payment_id, InboxEntry.status == "waiting")
        .order_by(InboxEntry.id)
    )
    return (await session.execute(query)).scalars().all()
