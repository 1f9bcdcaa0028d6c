"""Kafka clients configured from settings, with one-line errors when Kafka is away."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder
from murmurhash2 import murmurhash2

from spotify_stream import topics
from spotify_stream.errors import BrokerUnavailable, UserError
from spotify_stream.models.codec import encode_batch
from spotify_stream.security import aiokafka_auth
from spotify_stream.settings import Settings

log = logging.getLogger(__name__)

_TOPIC_EXISTS = 36


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection options shared by every aiokafka client, security included."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": "spotify-stream",
        **aiokafka_auth(settings),
    }


def _unreachable(settings: Settings, exc: BaseException) -> BrokerUnavailable:
    servers = ",".join(settings.bootstrap_servers)
    if isinstance(exc, TimeoutError) and _listening(settings.bootstrap_servers[0]):
        # The port answers but Kafka's handshake never completes: a listener of another
        # security protocol (TLS or SASL on one side, plaintext on the other).
        return BrokerUnavailable(
            f"Kafka at {servers} accepts connections but never answered a {settings.kafka_security} "
            "client: does its listener use another protocol? (SPOTIFY_STREAM_KAFKA_SECURITY "
            "and the port must match the broker's listener)"
        )
    reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
    return BrokerUnavailable(
        f"cannot reach Kafka at {','.join(settings.bootstrap_servers)} ({reason}); "
        "start one with `spotify-stream broker` or set SPOTIFY_STREAM_BROKER"
    )


def _listening(server: str) -> bool:
    """Whether ``host:port`` accepts a TCP connection (within a second)."""
    host, _, port = server.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
        return True
    except (OSError, ValueError):
        return False


async def _start(client: Any, settings: Settings) -> None:
    try:
        await asyncio.wait_for(client.start(), settings.connect_timeout)
    except (KafkaError, OSError, TimeoutError) as exc:
        await _close_quietly(client)
        raise _unreachable(settings, exc) from None


async def _close_quietly(client: Any) -> None:
    try:
        if isinstance(client, AIOKafkaAdminClient):
            await client.close()
        else:
            await client.stop()
    except Exception:  # already broken; nothing more to report
        log.debug("closing a failed Kafka client", exc_info=True)


def _expected_refusal(record: logging.LogRecord) -> bool:
    """Drop aiokafka's ERROR for a refused InitProducerId while idempotence is tried:
    the fallback is expected, and said once as a warning."""
    return not record.getMessage().startswith("Unexpected error during InitProducerIdRequest")


async def start_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """A started producer; with idempotence ``auto``, falls back to plain when refused."""
    options: dict[str, Any] = {
        **client_kwargs(settings),
        "acks": "all",
        "linger_ms": settings.producer_linger_ms,
        "compression_type": None
        if settings.producer_compression == "none"
        else settings.producer_compression,
        "max_batch_size": settings.producer_max_batch_bytes,
        "request_timeout_ms": int(max(settings.connect_timeout, 30) * 1000),
        **overrides,
    }
    mode = settings.producer_idempotence
    if mode != "off":
        producer = AIOKafkaProducer(**options, enable_idempotence=True)
        sender_log = logging.getLogger("aiokafka.producer.sender")
        sender_log.addFilter(_expected_refusal)
        try:
            await asyncio.wait_for(producer.start(), settings.connect_timeout)
            return producer
        except (KafkaConnectionError, OSError, TimeoutError) as exc:
            await _close_quietly(producer)
            raise _unreachable(settings, exc) from None
        except KafkaError:  # InitProducerId refused: the broker has no idempotence
            await _close_quietly(producer)
            if mode == "on":
                raise BrokerUnavailable(
                    "the broker refused an idempotent producer (InitProducerId); "
                    "set SPOTIFY_STREAM_PRODUCER_IDEMPOTENCE=off for brokers without it"
                ) from None
            log.warning(
                "broker does not support idempotent producers; producing without idempotence"
            )
        finally:
            sender_log.removeFilter(_expected_refusal)
    producer = AIOKafkaProducer(**options, enable_idempotence=False)
    await _start(producer, settings)
    return producer


async def ensure_topics(
    settings: Settings,
    names: Iterable[str],
    fixed: dict[str, int] | None = None,
    configs: dict[str, dict[str, str]] | None = None,
) -> dict[str, int]:
    """Create missing topics with the configured partition count (``fixed``: the
    count of topics that need another, such as the trainer's single partition;
    ``configs``: topic configs of those that need them).

    Returns the partition count of every topic. Existing topics keep theirs, never
    changed (``partition_plan`` tells what differs).
    """
    names, fixed, configs = list(names), fixed or {}, configs or {}
    admin = AIOKafkaAdminClient(
        **client_kwargs(settings), request_timeout_ms=int(settings.connect_timeout * 1000)
    )
    await _start(admin, settings)
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    n,
                    fixed.get(n, settings.partitions),
                    settings.replication,
                    topic_configs=configs.get(n),
                )
                for n in names
            ]
        )
        for topic, code, message in response.topic_errors:
            if code not in (0, _TOPIC_EXISTS):
                raise BrokerUnavailable(f"cannot create topic {topic}: {message} (error {code})")
        described = await admin.describe_topics(names)
    except KafkaError as exc:
        raise _unreachable(settings, exc) from None
    finally:
        await _close_quietly(admin)
    return {d["topic"]: len(d["partitions"]) for d in described}


async def ensure_worker_topics(settings: Settings) -> tuple[int, dict[str, int]]:
    """Every topic a worker reads or writes, each with its partitions and configs.

    The tracks topic decides the partition count of the co-partitioned rest (an
    existing one keeps its count, whatever the settings say): returns that count,
    and every topic's (``partition_plan`` tells what differs).
    """
    app_id = settings.app_id
    partitions = (await ensure_topics(settings, [topics.TRACKS.name]))[topics.TRACKS.name]
    counts = await ensure_topics(
        settings.model_copy(update={"partitions": partitions}),
        topics.worker_topics(app_id),
        topics.single_partition(app_id),
        topics.kept_forever(app_id),
    )
    return partitions, counts


def partition_plan(app_id: str, counts: dict[str, int], configured: int) -> list[str]:
    """What is wrong with the partition counts of a worker's topics: the stream topics
    and the table changelogs must all have the tracks topic's count."""
    partitions = counts[topics.TRACKS.name]
    warnings = []
    if partitions != configured:
        warnings.append(
            f"SPOTIFY_STREAM_PARTITIONS is {configured} but {topics.TRACKS.name} has "
            f"{partitions} partitions: the worker uses {partitions}"
        )
    changelogs = {topics.changelog(app_id, t) for t in topics.TABLES}
    for name in topics.co_partitioned(app_id):
        count = counts.get(name, partitions)
        if count == partitions:
            continue
        if name in changelogs:
            warnings.append(
                f"table changelog {name} has {count} partitions, {topics.TRACKS.name} "
                f"{partitions}: the table's state would not line up with the stream's "
                f"partitions; delete {name} (the worker rebuilds the table) or give the "
                "topics equal counts"
            )
        else:
            warnings.append(
                f"topic {name} has {count} partitions, {topics.TRACKS.name} {partitions}: "
                "keys would meet on different partitions; give them equal counts"
            )
    return warnings


async def read_topic(settings: Settings, topic: str) -> AsyncIterator[ConsumerRecord]:
    """Every message of ``topic``, all partitions, from the beginning at least up to
    the end offsets at the time of the call; outside any consumer group.

    A partition is done when the consumer's position passes its end offset, never by
    comparing message offsets with it: the embedded broker reports the end offset
    as the last batch's base offset + 1, and fetches return whole batches.
    """
    partitions = (await ensure_topics(settings, [topic]))[topic]
    consumer = AIOKafkaConsumer(**client_kwargs(settings), group_id=None, enable_auto_commit=False)
    await _start(consumer, settings)
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        end = await consumer.end_offsets(assigned)
        remaining = {tp for tp in assigned if end[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, messages in batches.items():
                for message in messages:
                    yield message
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    except KafkaError as exc:
        raise _unreachable(settings, exc) from None
    finally:
        await consumer.stop()


async def record_end_offsets(
    settings: Settings, ends: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """The end offsets ``ends`` (as the broker reported them) moved past every record.

    The embedded broker reports a partition's end as its last batch's base offset
    + 1, so whoever reads "up to the end" misses the rest of that batch: Faust's
    table recovery did, and restored stale state. Reading the batch at end - 1
    gives the true end (the position after it). On Kafka the two agree.
    """
    probe = {tp: end for tp, end in ends.items() if end > 0}
    result = dict(ends)
    if not probe:
        return result
    consumer = AIOKafkaConsumer(**client_kwargs(settings), group_id=None, enable_auto_commit=False)
    await _start(consumer, settings)
    try:
        consumer.assign(list(probe))
        for tp, end in probe.items():
            consumer.seek(tp, end - 1)
        deadline = time.monotonic() + settings.connect_timeout
        while probe and time.monotonic() < deadline:
            # A partition whose last offset holds no record (a transaction marker)
            # answers nothing and keeps its reported end.
            for tp in await consumer.getmany(*probe, timeout_ms=200):
                result[tp] = max(probe.pop(tp), await consumer.position(tp))
    except KafkaError as exc:
        raise _unreachable(settings, exc) from None
    finally:
        await consumer.stop()
    return result


async def start_offsets(
    settings: Settings, group_id: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """Where ``group_id`` resumes each partition: its committed offset, else the log start."""
    partitions = list(partitions)
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), group_id=group_id, enable_auto_commit=False
    )
    await _start(consumer, settings)
    try:
        start = await consumer.beginning_offsets(partitions)
        for tp in partitions:
            committed = await consumer.committed(tp)
            if committed is not None:
                start[tp] = max(start[tp], committed)
        return start
    except KafkaError as exc:
        raise _unreachable(settings, exc) from None
    finally:
        await consumer.stop()


_KAFKA_MURMUR2_SEED = 0x9747B28C


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner for keyed messages (murmur2 in C: 20x aiokafka's)."""
    return (murmurhash2(key, _KAFKA_MURMUR2_SEED) & 0x7FFFFFFF) % partitions


class PartitionedSender:
    """Accumulates messages into one batch per (topic, partition) and ships full ones.

    Batches are built directly (no per-message future): about 10x the messages
    per second of ``producer.send``. At most ``max_in_flight`` batches await
    acknowledgement at once; ``flush`` returns when every message handed over so
    far is acknowledged, and ``last_offsets`` then holds the highest acknowledged
    offset per (topic, partition).
    """

    def __init__(
        self, producer: AIOKafkaProducer, partitions: dict[str, int], max_in_flight: int = 32
    ) -> None:
        self.producer = producer
        self.partitions = partitions
        self.max_in_flight = max_in_flight
        self.acked: Counter[str] = Counter()
        self.last_offsets: dict[tuple[str, int], int] = {}
        self._batches: dict[tuple[str, int], tuple[BatchBuilder, int]] = {}
        self._in_flight: list[asyncio.Future] = []
        self._full: list[tuple[tuple[str, int], BatchBuilder, int]] = []
        self._shipping = asyncio.Lock()

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None = None,
        partition: int | None = None,
    ) -> None:
        if partition is None:
            partition = partition_for(key or b"", self.partitions[topic])
        slot = (topic, partition)
        entry = self._batches.get(slot)
        batch, count = entry if entry else (self.producer.create_batch(), 0)
        if batch.append(key=key, value=value, timestamp=timestamp_ms) is None:
            # Swap in a fresh batch before any await, so concurrent senders
            # (agents and services share one sender) never see a closed one.
            self._full.append((slot, batch, count))
            batch, count = self.producer.create_batch(), 0
            if batch.append(key=key, value=value, timestamp=timestamp_ms) is None:
                raise UserError(
                    f"a {topic} message of {len(value or b''):,} bytes does not fit in a batch; "
                    "raise SPOTIFY_STREAM_PRODUCER_MAX_BATCH_BYTES"
                )
            self._batches[slot] = (batch, count + 1)
            await self._ship_full()
        else:
            self._batches[slot] = (batch, count + 1)

    async def _ship_full(self) -> None:
        # One shipper at a time keeps the batches of a partition in order.
        async with self._shipping:
            while self._full:
                (topic, partition), batch, count = self._full.pop(0)
                batch.close()
                future = await self.producer.send_batch(batch, topic, partition=partition)
                future.add_done_callback(functools.partial(self._acknowledged, topic, count))
                self._in_flight.append(future)
        self._in_flight = [f for f in self._in_flight if not f.done()]
        if len(self._in_flight) > self.max_in_flight:
            await asyncio.gather(*self._in_flight[: len(self._in_flight) // 2])

    def _acknowledged(self, topic: str, count: int, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # raised to whoever awaits it
        metadata = future.result()
        self.acked[topic] += count
        slot = (topic, metadata.partition)
        last = metadata.offset + count - 1
        if last > self.last_offsets.get(slot, -1):
            self.last_offsets[slot] = last

    async def ship_open_batches(self) -> None:
        """Hand every open batch to Kafka now, without waiting for acknowledgements."""
        batches, self._batches = self._batches, {}
        self._full.extend((slot, batch, count) for slot, (batch, count) in batches.items() if count)
        await self._ship_full()

    async def flush(self) -> None:
        await self.ship_open_batches()
        await asyncio.gather(*self._in_flight)  # a snapshot: concurrent flushes each wait
        self._in_flight = [f for f in self._in_flight if not f.done()]


class RecordBatcher:
    """The opt-in bulk form: records of one (topic, partition) grouped into ``Batch`` messages.

    Each record still goes to the partition its key hashes to, so the agents'
    co-partitioned joins hold; the message itself has no key. With
    ``records_per_message`` 1 every record is a message of its own, keyed by id.
    """

    def __init__(self, sender: PartitionedSender, records_per_message: int) -> None:
        self.sender = sender
        self.size = records_per_message
        self.records: Counter[str] = Counter()
        self._open: dict[tuple[str, int], list[bytes]] = {}

    async def send(self, topic: str, key: bytes, value: bytes, batchable: bool = True) -> None:
        self.records[topic] += 1
        if self.size == 1 or not batchable:
            await self.sender.send(topic, key, value)
            return
        slot = (topic, partition_for(key, self.sender.partitions[topic]))
        bodies = self._open.setdefault(slot, [])
        bodies.append(value)
        if len(bodies) >= self.size:
            del self._open[slot]
            await self.sender.send(topic, None, encode_batch(bodies), partition=slot[1])

    async def ship_open_batches(self) -> None:
        await self.sender.ship_open_batches()

    async def flush(self) -> None:
        opened, self._open = self._open, {}
        for (topic, partition), bodies in opened.items():
            await self.sender.send(topic, None, encode_batch(bodies), partition=partition)
        await self.sender.flush()
