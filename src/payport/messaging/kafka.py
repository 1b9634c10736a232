"""The Kafka transport: commands from `payment_commands`, events to `payment_events`.

Delivery is at least once in both directions; effects are exactly once
because every command goes through the inbox (see payments/commands.py) and
offsets are committed only after the transaction holding a command's effects,
up to the lowest unfinished offset of each partition (see offsets.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    TopicAlreadyExistsError,
    UnknownProducerId,
)

from payport.config import Settings
from payport.errors import InvalidAmount, InvalidPayload, PayportError, TransportUnavailable
from payport.messaging import kafka_compat
from payport.messaging.dead_letters import tell_sender
from payport.messaging.dispatch import KeyedDispatcher
from payport.messaging.envelope import Envelope, parse_envelope, target_of
from payport.messaging.offsets import OffsetTracker
from payport.payments.handlers import Outcome, PaymentsContext, handle_command

log = logging.getLogger(__name__)
kafka_compat.install()

_VALIDATION_CODES = frozenset({InvalidPayload.code, InvalidAmount.code})
# The broker no longer knows this producer (e.g. it restarted without storage): start afresh.
_PRODUCER_LOST = (
    UnknownProducerId,
    OutOfOrderSequenceNumber,
    InvalidProducerEpoch,
    ProducerFenced,
    ProducerClosed,
)
_COMMIT_EVERY_S = 0.05
_MAX_BACKOFF_S = 5.0


def backoff(attempt: int, *, base_s: float = 0.1, cap_s: float = _MAX_BACKOFF_S) -> float:
    """Capped exponential backoff with full jitter."""
    return random.uniform(0, min(cap_s, base_s * 2**attempt))


class KafkaLink:
    """The process's producer and topic set-up; the broker may be down when payport starts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._topics_ready = False

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap_servers

    async def producer(self) -> AIOKafkaProducer:
        """The idempotent producer (acks=all), started on first use."""
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                await self.ensure_topics()
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    client_id="payport",
                    enable_idempotence=True,
                    acks="all",
                    linger_ms=1,
                    request_timeout_ms=10_000,
                )
                try:
                    await producer.start()
                except KafkaError as exc:
                    await producer.stop()
                    raise TransportUnavailable(
                        f"Kafka at {self.bootstrap} is not reachable ({type(exc).__name__})"
                    ) from None
                self._producer = producer
        return self._producer

    async def ensure_topics(self) -> None:
        """Create the command, event and dead-letter topics if missing (once per process)."""
        if self._topics_ready or not self.settings.kafka_create_topics:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="payport-admin")
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            wanted = [
                self.settings.commands_topic,
                self.settings.events_topic,
                self.settings.dlq_topic,
            ]
            missing = [
                NewTopic(name, self.settings.kafka_partitions, self.settings.kafka_replication)
                for name in wanted
                if name not in existing
            ]
            if missing:
                await _create_topics(admin, missing)
                log.info("created kafka topics %s", ",".join(t.name for t in missing))
        except KafkaError as exc:
            raise TransportUnavailable(
                f"Kafka at {self.bootstrap} is not reachable ({type(exc).__name__})"
            ) from None
        finally:
            await admin.close()
        self._topics_ready = True

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        """Queue one record; the returned future resolves when the broker has it (acks=all)."""
        producer = await self.producer()
        future: asyncio.Future[Any] = await producer.send(
            topic, value=value, key=key, headers=headers
        )
        return future

    async def recover(self, error: KafkaError) -> None:
        """After a failed send: drop a producer the broker forgot, re-check topics."""
        self._topics_ready = False
        if isinstance(error, _PRODUCER_LOST) and self._producer is not None:
            log.warning(
                "kafka producer state lost (%s); starting a new producer", type(error).__name__
            )
            producer, self._producer = self._producer, None
            with contextlib.suppress(KafkaError):
                await producer.stop()

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """Whether the broker answers a metadata request now (for /health/ready)."""
        try:
            producer = await asyncio.wait_for(self.producer(), timeout_s)
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout_s)
        except (TimeoutError, KafkaError, PayportError):
            return False
        return True

    async def aclose(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()


async def _create_topics(admin: AIOKafkaAdminClient, topics: list[NewTopic]) -> None:
    try:
        response = await admin.create_topics(topics)
    except TopicAlreadyExistsError:
        return  # another worker created them first
    for topic, code, message in getattr(response, "topic_errors", []):
        if code not in (0, TopicAlreadyExistsError.errno):
            raise TransportUnavailable(f"could not create topic {topic}: {message}")


def _key_bytes(key: str | None) -> bytes | None:
    return key.encode() if key else None


class KafkaCommandBus:
    """Puts commands on the command topic, keyed by order or payment id."""

    def __init__(self, link: KafkaLink) -> None:
        self._link = link
        # Highest offset produced per partition by this process (tests wait for it).
        self.produced: dict[TopicPartition, int] = {}

    async def submit(self, envelope: Envelope, body: bytes) -> None:
        """Produce the command; one retry after a broker restart made the producer stale."""
        topic = self._link.settings.commands_topic
        key = _key_bytes(target_of(envelope))
        for attempt in (1, 2):
            try:
                metadata = await (await self._link.send(topic, body, key))
                break
            except KafkaError as exc:
                await self._link.recover(exc)
                if attempt == 2:
                    raise TransportUnavailable(
                        f"could not put the command on Kafka ({type(exc).__name__}); retry"
                    ) from None
        self.note_produced(metadata.topic_partition, metadata.offset)

    def note_produced(self, partition: TopicPartition, offset: int) -> None:
        self.produced[partition] = max(self.produced.get(partition, -1), offset)


class KafkaEventPublisher:
    """Publishes outbox rows; sends are pipelined and awaited together, in order per key."""

    def __init__(self, link: KafkaLink) -> None:
        self._link = link

    async def publish(self, events: Sequence[tuple[str | None, str]]) -> None:
        topic = self._link.settings.events_topic
        try:
            pending = [
                await self._link.send(topic, body.encode(), _key_bytes(key)) for key, body in events
            ]
            await asyncio.gather(*pending)
        except KafkaError as exc:
            await self._link.recover(exc)
            raise

    async def aclose(self) -> None:
        await self._link.aclose()


class DeadLetterTopic:
    """Parks a message payport cannot act on, with the reason, and moves on."""

    def __init__(self, link: KafkaLink) -> None:
        self._link = link

    async def send(self, record: ConsumerRecord[bytes, bytes], error: PayportError) -> None:
        headers = [
            ("payport.dlq.reason", error.message.encode()),
            ("payport.dlq.error", error.code.encode()),
            ("payport.dlq.original.topic", record.topic.encode()),
            ("payport.dlq.original.partition", str(record.partition).encode()),
            ("payport.dlq.original.offset", str(record.offset).encode()),
            ("payport.dlq.original.value", record.value or b""),
        ]
        topic = self._link.settings.dlq_topic
        try:
            await (await self._link.send(topic, record.value or b"", record.key, headers))
        except KafkaError as exc:
            await self._link.recover(exc)
            raise
        log.warning(
            "dead-lettered command topic=%s partition=%d offset=%d reason=%s",
            record.topic,
            record.partition,
            record.offset,
            error.message,
        )


def rejected_as_invalid(outcome: Outcome) -> PayportError | None:
    """The validation error a handler answered with, if that is how it ended."""
    if outcome.event is None or outcome.event.type != "payment.failed":
        return None
    payload: Mapping[str, Any] = outcome.event.body.get("payload") or {}
    code = payload.get("error")
    if code not in _VALIDATION_CODES:
        return None
    return PayportError(str(payload.get("message", "invalid command")), code=str(code))


class KafkaCommandConsumer:
    """Consumes the command topic in a group: bounded concurrency, in order per key."""

    def __init__(
        self,
        ctx: PaymentsContext,
        link: KafkaLink,
        *,
        max_in_flight: int,
        produced: Callable[[], Mapping[TopicPartition, int]] = dict,
    ) -> None:
        self._ctx = ctx
        self._link = link
        self._settings = link.settings
        self._dispatcher = KeyedDispatcher(max_in_flight)
        self._offsets: OffsetTracker[TopicPartition] = OffsetTracker()
        self._dead_letters = DeadLetterTopic(link)
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = False
        self._last_commit = 0.0
        self._last_rewind_check = 0.0
        self._produced = produced

    def assigned_count(self) -> int:
        """How many partitions this worker holds now."""
        return len(self._consumer.assignment()) if self._consumer else 0

    async def start(self) -> None:
        """Join the group, retrying with a log line while the broker is unreachable."""
        attempt = 0
        while self._consumer is None and not self._stopping:
            try:
                await self._link.ensure_topics()
                self._consumer = await self._connect()
                log.info(
                    "consuming topic=%s group=%s broker=%s",
                    self._settings.commands_topic,
                    self._settings.consumer_group,
                    self._link.bootstrap,
                )
            except (KafkaError, TransportUnavailable) as exc:
                delay = backoff(attempt, base_s=0.5)
                attempt += 1
                log.warning(
                    "kafka broker %s not reachable (%s); retrying in %.1fs",
                    self._link.bootstrap,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _connect(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._link.bootstrap,
            group_id=self._settings.consumer_group,
            client_id="payport",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=self._settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(100, self._settings.kafka_session_timeout_ms // 10),
            max_poll_records=1000,
        )
        consumer.subscribe([self._settings.commands_topic], listener=_Rebalance(self))
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    async def poll_once(self, timeout_ms: int = 100) -> int:
        """Fetch what is there and start it; returns how many messages were started."""
        if self._consumer is None:
            await self.start()
        consumer = self._consumer
        if consumer is None:
            return 0
        batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=1000)
        if not batches:
            await self._rewind_past_end(consumer)
        started = 0
        for partition, records in batches.items():
            for record in records:
                if partition not in consumer.assignment():
                    break  # revoked while this batch was being started
                await self._dispatch(partition, record)
                started += 1
                # A fetch of up to 1,000 records waits for slots as it goes: commit what
                # finished meanwhile (every _COMMIT_EVERY_S), not seconds later at its end.
                await self.commit(force=False)
        await self.commit(force=False)
        return started

    async def _rewind_past_end(self, consumer: AIOKafkaConsumer) -> None:
        """Read from the start of a partition whose log now ends before our position.

        That only happens when the broker lost its log (a restart without
        storage): the offsets committed before belong to messages that are gone,
        and everything in the new log is unread. The inbox makes a re-read harmless.
        """
        now = asyncio.get_running_loop().time()
        if now - self._last_rewind_check < 1.0:
            return
        self._last_rewind_check = now
        for partition in consumer.assignment():
            highwater = consumer.highwater(partition)
            if highwater is None or self._offsets.unfinished(partition):
                continue
            if await consumer.position(partition) > highwater:
                log.warning(
                    "partition %s ends at %d, before the committed position: the broker lost "
                    "its log; reading it from the start",
                    partition,
                    highwater,
                )
                self._offsets.forget([partition])
                await consumer.seek_to_beginning(partition)

    async def _dispatch(self, partition: TopicPartition, record: ConsumerRecord[Any, Any]) -> None:
        self._offsets.started(partition, record.offset)
        source_ref = f"kafka:{record.topic}:{record.partition}:{record.offset}"
        try:
            envelope = parse_envelope(record.value or b"")
        except PayportError as error:
            unreadable = error  # `error` is unbound when the except block ends
            key = (record.key or b"").decode(errors="replace") or f"partition:{partition}"
            await self._dispatcher.submit(
                key, lambda: self._dead_letter(partition, record, unreadable, source_ref)
            )
            return
        key = target_of(envelope) or f"partition:{partition}"
        await self._dispatcher.submit(
            key, lambda: self._handle(partition, record, envelope, source_ref)
        )

    async def _handle(
        self,
        partition: TopicPartition,
        record: ConsumerRecord[Any, Any],
        envelope: Envelope,
        source_ref: str,
    ) -> None:
        attempt = 0
        while True:
            try:
                outcome = await handle_command(self._ctx, envelope, source_ref=source_ref)
                break
            except Exception:
                if self._stopping:
                    return  # left uncommitted: delivered again after the restart
                log.exception("command failed offset=%s; retrying", source_ref)
                await asyncio.sleep(backoff(attempt))
                attempt += 1
        invalid = rejected_as_invalid(outcome)
        if invalid is not None:
            await self._retrying(lambda: self._dead_letters.send(record, invalid))
        self._offsets.finished(partition, record.offset)

    async def _dead_letter(
        self,
        partition: TopicPartition,
        record: ConsumerRecord[Any, Any],
        error: PayportError,
        source_ref: str,
    ) -> None:
        async def park() -> None:
            await self._dead_letters.send(record, error)
            if await tell_sender(self._ctx.db, record.value or b"", error, source_ref):
                self._ctx.on_commit()

        if await self._retrying(park):
            self._offsets.finished(partition, record.offset)

    async def _retrying(self, step: Callable[[], Any]) -> bool:
        attempt = 0
        while not self._stopping:
            try:
                await step()
                return True
            except Exception:
                log.exception("dead-letter step failed; retrying")
                await asyncio.sleep(backoff(attempt))
                attempt += 1
        return False

    async def commit(self, *, force: bool = True) -> None:
        """Commit finished offsets; batched unless `force`."""
        consumer = self._consumer
        if consumer is None:
            return
        now = asyncio.get_running_loop().time()
        if not force and now - self._last_commit < _COMMIT_EVERY_S:
            return
        offsets = {
            partition: offset
            for partition, offset in self._offsets.committable().items()
            if partition in consumer.assignment()
        }
        if not offsets:
            return
        self._last_commit = now
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("offset commit failed (%s); will retry", type(exc).__name__)
            return
        self._offsets.committed(offsets)

    async def revoked(self, partitions: list[TopicPartition]) -> None:
        """Before giving partitions away: finish what was started, commit, forget."""
        await self._dispatcher.join()
        await self.commit()
        self._offsets.forget(partitions)

    async def join(self) -> None:
        await self._dispatcher.join()
        await self.commit()

    async def settled(self) -> bool:
        """Everything this process produced has been consumed, finished and committed."""
        consumer = self._consumer
        if consumer is None or not consumer.assignment():
            return False
        for partition, offset in self._produced().items():
            done = self._offsets.finished_through(partition)
            if done is None or done <= offset:
                return False
        return self._offsets.unfinished() == 0

    async def close(self, grace_s: float = 7.0) -> None:
        """Stop fetching, let in-flight commands finish (up to `grace_s`), commit, leave."""
        try:
            await asyncio.wait_for(self._dispatcher.join(), grace_s)
        except TimeoutError:
            log.warning("in-flight commands outlived %.0fs; they will be delivered again", grace_s)
            self._stopping = True
            await self._dispatcher.cancel()
        self._stopping = True
        consumer = self._consumer
        if consumer is None:
            return
        with contextlib.suppress(KafkaError):
            await self.commit()
        self._consumer = None
        await consumer.stop()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: KafkaCommandConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._owner.revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("assigned partitions %s", sorted(p.partition for p in assigned))


async def read_topic(
    settings: Settings, topic: str, *, follow: bool, idle_ms: int = 500
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` from the start, outside any group (for `payport events`).

    Without `follow` it stops once a fetch has come back empty for `idle_ms`
    with every partition read up to its high watermark.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id="payport-cli",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        while True:
            batches = await consumer.getmany(timeout_ms=idle_ms)
            for records in batches.values():
                for record in records:
                    yield record
            if not batches and not follow and await _read_to_end(consumer, assigned):
                return
    finally:
        await consumer.stop()


async def _read_to_end(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
    for partition in partitions:
        highwater = consumer.highwater(partition)
        if highwater is not None and await consumer.position(partition) < highwater:
            return False
    return True
