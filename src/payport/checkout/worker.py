"""Checkout's part of the runtime: its HTTP client, context, and the two worker steps
(send due order calls; expire sandbox sessions whose time ran out)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from payport.checkout.auth import UserTokenVerifier
from payport.checkout.calls import OrderCallSender
from payport.checkout.orders import OrderServiceClient
from payport.checkout.service import CHECKOUT_EVENTS, CheckoutContext, apply_checkout_event
from payport.config import Settings
from payport.db import Database
from payport.providers.base import PaymentProvider
from payport.providers.sandbox import SandboxProvider


class CheckoutRuntime:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        provider: PaymentProvider,
        *,
        on_commit: Callable[[], None] = lambda: None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._owns_client = client is None
        self.client = client or httpx.AsyncClient(timeout=settings.order_call_timeout_s)
        self.settings = settings
        self.provider = provider
        self.ctx = CheckoutContext(
            db=db,
            provider=provider,
            settings=settings,
            orders=OrderServiceClient(settings, self.client),
            on_commit=on_commit,
        )
        self.verifier = UserTokenVerifier.from_settings(settings)
        self.sender = OrderCallSender(db, settings=settings, provider=provider, client=self.client)

    def event_handlers(self) -> Mapping[str, Any]:
        """What the webhook processor calls for the events checkout acts on."""

        async def handle(session: AsyncSession, event_type: str, obj: Mapping[str, Any]) -> bool:
            return await apply_checkout_event(session, event_type, obj, self.settings)

        return dict.fromkeys(CHECKOUT_EVENTS, handle)

    async def calls_step(self) -> int:
        return await self.sender.deliver_due()

    async def sweep_step(self) -> int:
        if isinstance(self.provider, SandboxProvider):
            return await self.provider.expire_due_checkout_sessions()
        return 0

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()
