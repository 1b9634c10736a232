"""Wires settings into a database, a provider, a transport and the background loops.

`payport serve` runs API and worker loops in one process; `payport api` and
`payport worker` run them apart. Tests drive the same loops step by step with
`drain()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx

from payport.billing import outcomes as billing_outcomes
from payport.billing.renewals import BillingEngine
from payport.checkout.worker import CheckoutRuntime
from payport.config import ProviderName, Settings
from payport.db import Database
from payport.messaging.bus import CommandBus
from payport.messaging.lease import hold_lease, release_lease
from payport.messaging.local import relay_once
from payport.messaging.transport import build_transport
from payport.payments.handlers import PaymentsContext
from payport.payments.reconcile import HeldBatch, Progress, Summary, reconcile
from payport.providers.base import PaymentProvider
from payport.providers.sandbox import SandboxProvider, SandboxWebhookDeliverer
from payport.refunds import service as refunds
from payport.webhooks.receive import receive_webhook
from payport.webhooks.service import EventRecorder, WebhookProcessor, merge_handlers

log = logging.getLogger(__name__)
# AUTHORIZED payments the worker's reconcile asks the provider about per run (round robin).
RECONCILE_HELD_BATCH = 200

POLL_INTERVAL_S = 0.25


class Signal:
    """A wake-up call between loops of one process (other processes poll).

    One loop waits on each signal: the waiter clears it, so a second waiter could take a
    wake-up the first one needed and leave it to the poll interval.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)
        self._event.clear()


def build_provider(settings: Settings, db: Database) -> PaymentProvider:
    """The configured provider: Stripe through its SDK, or the in-process sandbox."""
    if settings.provider is ProviderName.STRIPE:
        from payport.providers.stripe import build_stripe_provider

        return build_stripe_provider(settings)
    return SandboxProvider(
        db,
        base_url=settings.base_url,
        latency_ms=settings.sandbox_latency_ms,
        failure_rate=settings.sandbox_failure_rate,
        configured_webhook_secrets=[s.get_secret_value() for s in settings.stripe_webhook_secret],
    )


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        webhook_client: httpx.AsyncClient | None = None,
        db: Database | None = None,
    ) -> None:
        self.settings = settings
        self.db = db or Database(
            settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        self.provider = build_provider(settings, self.db)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self.commands_ready = Signal()
        self.outbox_ready = Signal()
        self.webhooks_ready = Signal()
        self.deliveries_ready = Signal()
        self.order_calls_ready = Signal()  # checkout's calls to the shop; not the relay's signal
        self.ctx = PaymentsContext(
            db=self.db, provider=self.provider, settings=settings, on_commit=self._after_commit
        )
        self.transport = build_transport(settings, self.ctx, on_submit=self.commands_ready.notify)
        self.bus: CommandBus = self.transport.bus
        self.consumer = self.transport.consumer
        self.publisher = self.transport.publisher
        self.checkout = CheckoutRuntime(
            settings, self.db, self.provider, on_commit=self._after_checkout_commit
        )
        self.webhook_processor = WebhookProcessor(
            self.db,
            self.provider,
            handlers=merge_handlers(
                self.checkout.event_handlers(), billing_outcomes.webhook_handlers(settings)
            ),
            authorizing=self.ctx.authorizing,
        )
        self.billing = BillingEngine(self.db, self.provider, settings, on_commit=self._after_commit)
        self.event_recorder = EventRecorder(self.db)
        self._webhook_secrets: list[str] | None = None
        self._loopback_webhooks = False
        self._webhook_client = webhook_client
        self._owns_client = webhook_client is None
        self.deliverer: SandboxWebhookDeliverer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def deliver_webhooks_in_process(self) -> None:
        """`payport serve` with the default webhook URL: the sandbox's events are for this
        very process, so they skip the HTTP round trip but not the signature check."""
        if self.settings.sandbox_webhook_url is None:
            self._loopback_webhooks = True

    async def _receive_own_webhook(self, body: bytes, signature: str) -> tuple[int, str]:
        receipt = await receive_webhook(
            body,
            signature,
            secrets=await self.webhook_secrets(),
            tolerance_s=self.settings.webhook_tolerance_s,
            recorder=self.event_recorder,
        )
        if receipt.stored:
            self.webhooks_ready.notify()
        return receipt.status, str(receipt.body)

    def use_webhook_client(self, client: httpx.AsyncClient) -> None:
        """Send sandbox webhooks through `client` (tests point it at the app in-process)."""
        self._webhook_client = client
        self._owns_client = False
        self.deliverer = None

    def _after_commit(self) -> None:
        self.outbox_ready.notify()
        self.deliveries_ready.notify()

    def _after_checkout_commit(self) -> None:
        self._after_commit()
        self.order_calls_ready.notify()

    async def webhook_secrets(self) -> list[str]:
        """Configured secrets, plus the sandbox's own; read once, they do not change."""
        if self._webhook_secrets is None:
            secrets = [s.get_secret_value() for s in self.settings.stripe_webhook_secret]
            if isinstance(self.provider, SandboxProvider):
                sandbox_secret = await self.provider.webhook_secret()
                if sandbox_secret not in secrets:
                    secrets.append(sandbox_secret)
            self._webhook_secrets = secrets
        return self._webhook_secrets

    def _sandbox_deliverer(self) -> SandboxWebhookDeliverer | None:
        if not isinstance(self.provider, SandboxProvider):
            return None
        if self.deliverer is None:
            if self._webhook_client is None:
                self._webhook_client = httpx.AsyncClient(timeout=10.0)
            url = self.settings.sandbox_webhook_url or f"{self.settings.base_url}/stripe-webhook"
            self.deliverer = SandboxWebhookDeliverer(
                self.db,
                provider=self.provider,
                url=url,
                client=self._webhook_client,
                loopback=self._receive_own_webhook if self._loopback_webhooks else None,
            )
        return self.deliverer

    # --- one step of each loop ----------------------------------------------------------

    async def relay_step(self) -> int:
        return await relay_once(self.db, self.publisher)

    async def webhook_step(self) -> int:
        taken = await self.webhook_processor.process_pending()
        if taken:
            self.order_calls_ready.notify()  # checkout events among them may owe shop calls
        return taken

    async def delivery_step(self) -> int:
        deliverer = self._sandbox_deliverer()
        return await deliverer.deliver_due() if deliverer else 0

    async def drain(self, *, timeout_s: float = 60.0) -> None:
        """Run every loop until nothing is left to do (tests drive payport with this)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            work = await self.consumer.poll_once()
            await self.consumer.join()
            work += await self.relay_step()
            work += await self.delivery_step()
            work += await self.webhook_step()
            await self.webhook_processor.join()
            work += await self.checkout.calls_step()
            work += await self.relay_step()
            if work == 0 and await self.consumer.settled():
                return
        raise RuntimeError("drain did not settle")

    # --- background loops ---------------------------------------------------------------

    @staticmethod
    def settle_heap() -> None:
        """Move start-up objects (modules, mappers, compiled SQL) out of the GC's view.

        Measured under load: full collections took 125-150 ms, stalling every
        request; after freezing, collections only scan what requests create.
        """
        gc.collect()
        gc.freeze()

    def start_worker(self) -> None:
        """Start the consumer, relay, webhook processor and sandbox webhook sender."""
        if self.transport.consumer_needs_lease:
            consume = self._leased_loop(
                "local-commands", self.consumer.poll_once, self.commands_ready
            )
        else:
            consume = self._loop(self.consumer.poll_once, None)
        self._tasks += [
            asyncio.create_task(consume),
            asyncio.create_task(
                self._leased_loop("outbox-relay", self.relay_step, self.outbox_ready)
            ),
            asyncio.create_task(self._loop(self.webhook_step, self.webhooks_ready)),
        ]
        if self.db.is_sqlite:
            self._tasks.append(asyncio.create_task(self._checkpoint_loop()))
        if isinstance(self.provider, SandboxProvider):
            self._tasks.append(
                asyncio.create_task(
                    self._loop(self.delivery_step, self.deliveries_ready, gather_s=0.1)
                )
            )
        if self.settings.reconcile_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._reconcile_loop()))
        self._tasks += [
            asyncio.create_task(self._loop(self.checkout.calls_step, self.order_calls_ready)),
            asyncio.create_task(self._sweep_loop()),
        ]
        if self.settings.billing_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._billing_loop()))

    async def _sweep_loop(self) -> None:
        """Close checkout sessions whose time ran out (the sandbox; Stripe does its own)."""
        while not self._stopping.is_set():
            await asyncio.sleep(self.settings.checkout_sweep_interval_s)
            try:
                if await self.checkout.sweep_step():
                    self.deliveries_ready.notify()
            except Exception:
                log.exception("checkout expiry sweep failed; will retry")

    async def _billing_loop(self) -> None:
        """Renewals and dunning retries on the system clock; one process at a time (lease)."""
        every_s = self.settings.billing_interval_s
        while not self._stopping.is_set():
            try:
                if await hold_lease(self.db, "billing", self.holder, ttl_s=every_s + 60):
                    while await self.billing.run_due() > 0:
                        pass
            except Exception:
                log.exception("billing run failed; will retry next interval")
            await asyncio.sleep(every_s)

    async def _reconcile_loop(self) -> None:
        """Heal what crashes and lost webhooks left half-way; one process at a time (lease).

        Only payments untouched for a whole interval, so work still in flight is left alone.
        """
        every_s = self.settings.reconcile_interval_s
        older_than = timedelta(seconds=every_s)
        held = HeldBatch(RECONCILE_HELD_BATCH)
        while not self._stopping.is_set():
            await asyncio.sleep(every_s)
            try:
                if await hold_lease(self.db, "reconcile", self.holder, ttl_s=every_s + 60):
                    summary = await self.heal(older_than=older_than, held=held)
                    held = HeldBatch(RECONCILE_HELD_BATCH, after=summary.held_next)
            except Exception:
                log.exception("reconcile failed; will retry next interval")

    async def heal(
        self,
        *,
        older_than: timedelta,
        held: HeldBatch | None = None,
        on_progress: Progress | None = None,
    ) -> Summary:
        """One reconcile pass: payments left half-way, then refunds left processing."""
        summary = await reconcile(
            self.ctx, older_than=older_than, held=held, on_progress=on_progress
        )
        summary.counts.update(
            await refunds.resume_processing(self.db, self.provider, older_than=older_than)
        )
        return summary

    async def _loop(
        self, step: Callable[[], Awaitable[int]], signal: Signal | None, *, gather_s: float = 0.0
    ) -> None:
        """Run `step` until stopped; idle waits for `signal` (None: the step waits itself).

        `gather_s` > 0 lets work pile up for that long before each step, so a background
        step runs in fewer, larger batches and keeps off the event loop while commands run.
        """
        failures = 0
        while not self._stopping.is_set():
            try:
                if gather_s > 0:
                    await asyncio.sleep(gather_s)
                done = await step()
                failures = 0
            except Exception:
                log.exception("background step failed; retrying")
                failures += 1
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                continue
            if done == 0 and signal is not None:
                await signal.wait(POLL_INTERVAL_S)

    async def _checkpoint_loop(self, every_s: float = 1.0) -> None:
        """SQLite only: keep the WAL short without stalling the loop (see db.py)."""
        while not self._stopping.is_set():
            await asyncio.sleep(every_s)
            try:
                await self.db.checkpoint()
            except Exception:
                log.exception("WAL checkpoint failed; will retry")

    async def _leased_loop(
        self, name: str, step: Callable[[], Awaitable[int]], signal: Signal
    ) -> None:
        """Like `_loop`, but only while this process holds the lease `name`."""
        renew_every = 5.0
        loop = asyncio.get_running_loop()
        renewed_at = -renew_every
        failures = 0
        while not self._stopping.is_set():
            try:
                if loop.time() - renewed_at >= renew_every:
                    if not await hold_lease(self.db, name, self.holder):
                        await asyncio.sleep(1.0)
                        continue
                    renewed_at = loop.time()
                done = await step()
                failures = 0
            except Exception:
                log.exception("background step %s failed; retrying", name)
                failures += 1
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                continue
            if done == 0:
                await signal.wait(POLL_INTERVAL_S)

    async def stop(self) -> None:
        """Stop fetching, let in-flight commands finish, then close everything."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.consumer.close()
        await self.webhook_processor.join()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.relay_step(), 2.0)
        for name in ("local-commands", "outbox-relay", "reconcile", "billing"):
            with contextlib.suppress(Exception):
                await release_lease(self.db, name, self.holder)
        await self.provider.aclose()
        await self.checkout.aclose()
        await self.publisher.aclose()
        if self._owns_client and self._webhook_client is not None:
            await self._webhook_client.aclose()
        await self.db.dispose()
