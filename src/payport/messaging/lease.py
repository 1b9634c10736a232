"""Leases so that singleton loops (local consumer, relay) run in one process at a time."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from payport.db import Database, utcnow
from payport.messaging.models import WorkerLease


async def hold_lease(db: Database, name: str, holder: str, *, ttl_s: float = 15.0) -> bool:
    """Take or renew `name` for `holder`; False while another live holder has it."""
    now = utcnow()
    async with db.transaction() as session:
        lease = (
            await session.execute(
                select(WorkerLease).where(WorkerLease.name == name).with_for_update()
            )
        ).scalar_one_or_none()
        if lease is None:
            session.add(
                WorkerLease(
                    name=name, holder=holder, expires_at=now + timedelta(seconds=ttl_s), fencing=1
                )
            )
            return True
        if lease.holder != holder and lease.expires_at > now:
            return False
        if lease.holder != holder:
            lease.fencing += 1
        lease.holder = holder
        lease.expires_at = now + timedelta(seconds=ttl_s)
        return True


async def release_lease(db: Database, name: str, holder: str) -> None:
    async with db.transaction() as session:
        lease = await session.get(WorkerLease, name)
        if lease is not None and lease.holder == holder:
            await session.delete(lease)
