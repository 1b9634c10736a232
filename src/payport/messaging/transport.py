"""The transport port: how commands come in and events go out, `local` or `kafka` alike.

Everything above this line (handlers, inbox, outbox) is the same on both;
a behaviour test that passes on one must pass on the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from payport.config import Settings, TransportName
from payport.messaging.bus import CommandBus, LocalCommandBus
from payport.messaging.local import LocalCommandConsumer, LocalEventPublisher
from payport.payments.handlers import PaymentsContext

if TYPE_CHECKING:
    from payport.messaging.kafka import KafkaLink


class CommandConsumer(Protocol):
    async def poll_once(self) -> int:
        """Start what is waiting; how many commands were started."""
        ...

    async def join(self) -> None:
        """Wait for started commands and record their progress (offsets, rows)."""
        ...

    async def settled(self) -> bool:
        """Nothing submitted through this process is still unconsumed."""
        ...

    async def close(self, grace_s: float = 7.0) -> None: ...


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[tuple[str | None, str]]) -> None:
        """Send (key, body) pairs in order; return only when all are acknowledged."""
        ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class Transport:
    name: TransportName
    bus: CommandBus
    consumer: CommandConsumer
    publisher: EventPublisher
    # Kafka's group shares partitions among workers; the local table needs a lease.
    consumer_needs_lease: bool
    kafka: KafkaLink | None = None

    async def broker_up(self) -> bool | None:
        """For /health/ready: None when there is no broker to ask."""
        return None if self.kafka is None else await self.kafka.ping()


def build_transport(
    settings: Settings, ctx: PaymentsContext, *, on_submit: Callable[[], None]
) -> Transport:
    if settings.transport is TransportName.KAFKA:
        from payport.messaging.kafka import (
            KafkaCommandBus,
            KafkaCommandConsumer,
            KafkaEventPublisher,
            KafkaLink,
        )

        link = KafkaLink(settings)
        bus = KafkaCommandBus(link)
        return Transport(
            name=settings.transport,
            bus=bus,
            consumer=KafkaCommandConsumer(
                ctx, link, max_in_flight=settings.max_in_flight, produced=lambda: bus.produced
            ),
            publisher=KafkaEventPublisher(link),
            consumer_needs_lease=False,
            kafka=link,
        )
    return Transport(
        name=settings.transport,
        bus=LocalCommandBus(ctx.db, on_submit=on_submit),
        consumer=LocalCommandConsumer(ctx, max_in_flight=settings.max_in_flight),
        publisher=LocalEventPublisher(),
        consumer_needs_lease=True,
    )
