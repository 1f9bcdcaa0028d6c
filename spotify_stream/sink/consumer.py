"""Lands topics in the lake: buffers per Kafka partition, Parquet per hour, then commits.

A component of its own, like a Kafka Connect task: it runs inside a worker
(``SPOTIFY_STREAM_LAKE_SINK=true``, the default; dead letters go out with the
worker's pipeline) or as its own process (``spotify-stream sink``,
``sink.process``). Either gives it ``Outputs``: where its dead letters go, and
the input topics' rules.

The sink is a consumer group of its own (``<app_id>-lake``), not a Faust agent:
Faust does not stream a topic that is also a table's changelog, and
``spotify.tracks.enriched`` is the changelog of the ``enriched`` table. Its
own group also lets it commit exactly what the lake holds: a partition's
offset moves only past records that are in a durable object (the oldest
buffered record, or everything read when nothing is buffered). Object names
being a pure function of the flush range, the replay after a crash rewrites
the same objects (no duplicate rows). A partition's buffer is created on its
first message after an assignment, from the names of the objects already in
the lake (``PartitionBuffer.recovering``).

Records are held as they came (encoded); a flush is written by a task of its
own (two at once), decoded and encoded in a thread, while the loop goes on
reading. While storage is down (``StorageUnavailable``: unreachable,
refusing, full), flushes wait and are retried with one backoff for all
datasets (1 s doubling to 30 s); nothing past them is committed. Any other
failure of a write is a bug: retrying would repeat it while every dataset
waited behind the gate, so the worker stops, and its successor replays.
The consumer keeps polling (so it stays in its group) but pauses every
partition while the sink holds ``sink_max_memory`` message bytes or more,
and resumes by itself once the flushes land. On a clean stop the sink writes
what it holds and commits it.

The lake holds exactly the records the agents process: messages without a
readable header or of another record type, and records of an input topic
that do not decode or break its rules (``validation.Rules``: an empty id, a
wrong partition, a play dated ahead), are dead-lettered by the agents that
own the topic; the sink counts them as ``skipped`` and lands none. Records
the lake cannot hold (a record not fitting the Parquet schema, an event time
outside the years of the ``dt=`` folders, a body of our own outputs that
does not decode) are dead-lettered here, with reason ``not_parquet``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from mode import Service

from spotify_stream import topics
from spotify_stream.commits import safe_offset
from spotify_stream.kafka import client_kwargs
from spotify_stream.models import codec_for
from spotify_stream.models.codec import DecodeError, items_in, record_name
from spotify_stream.models.deadletters import Reason, dead_letter
from spotify_stream.models.wire import MAGIC
from spotify_stream.settings import Settings
from spotify_stream.sink.buffer import Flush, Limits, PartitionBuffer
from spotify_stream.sink.datasets import DATASETS, Dataset
from spotify_stream.sink.storage import Storage, StorageUnavailable, storage_for
from spotify_stream.sink.writer import LakeWriter, Written
from spotify_stream.validation import Rules

log = logging.getLogger(__name__)


class Outputs(Protocol):
    """What the sink needs of the process it runs in: the worker's ``Pipeline``, or
    ``process.SinkOutputs`` with a producer of its own."""

    settings: Settings

    def queue_dead_letter(self, key: bytes, record: dict[str, Any]) -> None:
        """Send ``record`` (a DeadLetter) with the next commit point."""

    async def commit_point(self) -> None:
        """Wait until every dead letter queued so far is acknowledged."""

    def rules(self, topic: str, record: str, key_field: str) -> Rules:
        """The rules the agents apply to records of type ``record`` on input ``topic``."""


class Layout(Protocol):
    """How the lake holds a dataset: ``writer.LakeWriter`` (the Hive layout, objects
    named by their offsets) or ``iceberg.IcebergWriter`` (tables whose snapshots hold
    the offsets)."""

    storage: Storage
    #: whether a write takes every flush taken (all partitions: one commit) or one
    together: bool

    async def recover(
        self, dataset: Dataset, partition: int, committed: int, limits: Limits
    ) -> PartitionBuffer:
        """The buffer of a partition assigned at offset ``committed``."""

    async def write_all(
        self, flushes: list[Flush], dataset: Dataset, rules: Rules | None
    ) -> Written:
        """``flushes`` durable in the lake (``StorageUnavailable``: not now)."""


class WriteGate:
    """Shared by the datasets, as they share the storage: how many flushes are written
    at once, and, after a failure, when storage may be tried again (so while it is
    down, a failure of one dataset defers the attempts of all)."""

    FIRST, LAST = 1.0, 30.0
    #: Flushes written at once: decoding and Parquet encoding release the GIL, so
    #: two use a second core while the event loop goes on reading.
    SLOTS = 2

    def __init__(self) -> None:
        self.slots = asyncio.Semaphore(self.SLOTS)
        self.delay = self.FIRST
        self._until = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self._until

    def failed(self) -> float:
        """Defer attempts; returns the seconds until the next one."""
        delay, self._until = self.delay, time.monotonic() + self.delay
        self.delay = min(self.delay * 2, self.LAST)
        return delay

    def succeeded(self) -> None:
        self.delay = self.FIRST

    def reset(self) -> None:
        """Allow attempts now (a clean stop)."""
        self._until = 0.0


class StorageDown(Exception):
    """The lake cannot be listed now: the message is to be read again later."""


class LakeSink:
    """One dataset: its partitions' buffers, its unwritten flushes, the offsets safe to commit."""

    def __init__(
        self,
        outputs: Outputs,
        writer: Layout,
        dataset: Dataset,
        limits: Limits,
        gate: WriteGate,
    ) -> None:
        self.outputs = outputs
        self.writer = writer
        self.gate = gate
        self.dataset = dataset
        self.limits = limits
        self.buffers: dict[int, PartitionBuffer] = {}
        self.pending: list[Flush] = []  # taken, not yet written (some being written)
        self._writing: dict[int, asyncio.Task[None]] = {}  # id(flush) -> its write
        self._next: dict[int, int] = {}  # partition -> offset after the last message read
        self._header = MAGIC + codec_for(dataset.topic.record).fingerprint
        self.stats: dict[str, Any] = dict.fromkeys(
            (
                "read",
                "files",
                "rows",
                "bytes",
                "flushes",
                "failures",
                "skipped",
                "rejected",
                "landed_before",
            ),
            0,
        ) | {
            "last_flush_at": None,
            "last_flush_seconds": None,
            "flushes_by_reason": Counter(),  # replay, rows, bytes, window, stop
            "failures_by_reason": Counter(),  # StorageUnavailable.reason
        }
        self.broken: BaseException | None = None  # a write that failed other than storage

    @property
    def held_bytes(self) -> int:
        """Message bytes held in memory: buffered, or taken and not yet written."""
        return sum(b.bytes for b in self.buffers.values()) + sum(f.bytes for f in self.pending)

    def safe_offsets(self) -> dict[int, int]:
        """partition -> the offset to commit: nothing before it is only in memory
        (``commits``, step 1)."""
        return {
            partition: safe_offset(
                next_offset,
                [
                    *(f.first for f in self.pending if f.partition == partition),
                    self.buffers[partition].first,
                ],
            )
            for partition, next_offset in self._next.items()
        }

    async def settle(self) -> None:
        """Before partitions go: a layout that commits them together (an Iceberg table
        and its offsets) waits for the write under way, so none lands after the new
        owner has read where the table stands. (A Hive object landing late is the
        same object the new owner writes.)"""
        if self.writer.together:
            await asyncio.gather(*self._writing.values())

    def revoke(self, partitions: set[int]) -> None:
        """Forget what is held for partitions this worker lost: their new owner replays it."""
        for partition in partitions:
            self.buffers.pop(partition, None)
            self._next.pop(partition, None)
        self.pending = [f for f in self.pending if f.partition not in partitions]

    async def add(self, partition: int, messages: list[ConsumerRecord]) -> None:
        """Take messages of one partition, in order; raises ``StorageDown`` (having
        taken nothing) when the partition's buffer must first be recovered from a
        lake that does not answer."""
        buffer = self.buffers.get(partition)
        if buffer is None:
            buffer = self.buffers[partition] = await self._recover(partition, messages[0].offset)
        now, read = time.monotonic(), 0
        for message in messages:
            offset = message.offset
            if offset < buffer.landed:  # a replay of what the lake holds (Iceberg: in the table)
                self.stats["landed_before"] += 1
                continue
            items = self._items(message.value or b"")
            if items and buffer.cut_before(offset):
                self._flush(buffer, "replay")
            for item in items:
                buffer.add(offset, item, now, message.timestamp)
            read += len(items)
            if reason := buffer.due(now):
                self._flush(buffer, reason)
        self.stats["read"] += read
        self._next[partition] = messages[-1].offset + 1

    def _items(self, value: bytes) -> list[bytes]:
        """This dataset's records in a message, still encoded; others counted as skipped."""
        if value.startswith(self._header):  # one record of the current schema
            return [value]
        try:
            items = items_in(value)
        except DecodeError:
            self.stats["skipped"] += 1
            return []
        ours = []
        for item in items:
            try:
                if record_name(item) == self.dataset.topic.record:
                    ours.append(item)
                    continue
            except DecodeError:
                pass
            self.stats["skipped"] += 1
        return ours

    def next_window_end(self) -> float | None:
        """When the first of this dataset's buffers reaches its window; None if all are empty."""
        ends = [e for b in self.buffers.values() if (e := b.window_ends) is not None]
        return min(ends, default=None)

    def flush_due(self) -> None:
        """Retry unwritten flushes, then flush the buffers whose window has passed."""
        self._start_writes()
        now = time.monotonic()
        for buffer in list(self.buffers.values()):
            if reason := buffer.due(now):
                self._flush(buffer, reason)

    async def flush_all(self) -> None:
        """Take every buffer and write what can be written, once (a clean stop)."""
        for buffer in list(self.buffers.values()):
            if buffer.first is not None:
                self.pending.append(buffer.take("stop"))
        await asyncio.gather(*self._writing.values())
        self.gate.reset()
        self._start_writes()
        await asyncio.gather(*self._writing.values())

    async def _recover(self, partition: int, committed: int) -> PartitionBuffer:
        if not self.gate.ready():
            raise StorageDown
        try:
            return await self.writer.recover(self.dataset, partition, committed, self.limits)
        except StorageUnavailable as exc:  # the caller reads the message again later
            self._failed(f"recovering partition {partition}", exc)
            raise StorageDown from None

    def _flush(self, buffer: PartitionBuffer, reason: str) -> None:
        self.pending.append(buffer.take(reason))
        self._start_writes()

    def _start_writes(self) -> None:
        """Start a write for every taken flush not being written (the gate decides how
        many run at once), or, for a layout that writes flushes together, one write of
        all of them once the last has landed; after a failure, none before the backoff
        has passed."""
        if not self.gate.ready():
            return
        if self.writer.together:
            if self.pending and not self._writing:
                flushes = list(self.pending)
                self._writing[id(flushes[0])] = asyncio.create_task(self._write(flushes))
            return
        for flush in self.pending:
            if id(flush) not in self._writing:
                self._writing[id(flush)] = asyncio.create_task(self._write([flush]))

    async def _write(self, flushes: list[Flush]) -> None:
        try:
            async with self.gate.slots:
                if self.gate.ready():  # not if another write failed meanwhile
                    await self._write_now(flushes)
        except Exception as exc:  # not storage: a bug, which retrying would only repeat
            log.exception("%s: writing a flush failed; stopping the worker", self.dataset.name)
            self.broken = exc
        finally:
            del self._writing[id(flushes[0])]

    async def _write_now(self, flushes: list[Flush]) -> None:
        started = time.monotonic()
        try:
            written = await self.writer.write_all(flushes, self.dataset, self._rules())
            by_item = {id(item): f.partition for f in flushes for item in f.items}
            for item, reason in written.rejected:
                self._dead_letter(by_item[id(item)], item, reason)
            if written.rejected:
                await self.outputs.commit_point()  # dead letters durable before the offsets move
        except StorageUnavailable as exc:  # keep the flushes and their offsets, retry
            what = ", ".join(
                f"offsets {f.first}..{f.last} of partition {f.partition}" for f in flushes
            )
            self._failed(f"writing {what}", exc)
            return
        self.pending = [f for f in self.pending if all(f is not w for w in flushes)]
        self.gate.succeeded()
        self.stats["files"] += written.files
        self.stats["rows"] += written.rows
        self.stats["bytes"] += written.bytes
        self.stats["rejected"] += len(written.rejected)
        self.stats["skipped"] += written.skipped
        self.stats["flushes"] += len(flushes)
        self.stats["flushes_by_reason"].update(f.reason for f in flushes)
        self.stats["last_flush_at"] = time.time()
        self.stats["last_flush_seconds"] = round(time.monotonic() - started, 3)

    def _rules(self) -> Rules | None:
        """The rules of an input topic (its agents letter what breaks them); None for
        our own outputs."""
        topic = self.dataset.topic
        if topic not in topics.INPUTS or topic.key is None:
            return None
        return self.outputs.rules(topic.name, topic.record, topic.key)

    def _failed(self, what: str, exc: StorageUnavailable) -> None:
        self.stats["failures"] += 1
        self.stats["failures_by_reason"][exc.reason] += 1
        delay = self.gate.failed()
        log.warning("%s: %s failed (%s); retrying in %.0f s", self.dataset.name, what, exc, delay)

    def _dead_letter(self, partition: int, item: bytes, reason: str) -> None:
        if self.dataset.topic == topics.DEADLETTER:  # a dead letter of a dead letter would loop
            log.error(
                "deadletters: a dead letter of partition %d cannot be landed (%s); it stays in %s",
                partition,
                reason,
                topics.DEADLETTER.name,
            )
            return
        letter = dead_letter(
            Reason.NOT_PARQUET,
            reason,
            self.dataset.topic.name,
            item,
            self.outputs.settings.deadletter_max_raw_bytes,
            partition=partition,
        )
        self.outputs.queue_dead_letter(f"{self.dataset.name}:{partition}".encode(), letter)


#: How long a clean stop waits for the last flushes (storage may be down).
_DRAIN_SECONDS = 30.0


class LakeConsumer(Service, ConsumerRebalanceListener):
    """The sink's consumer group: reads every dataset topic, feeds the sinks, commits."""

    def __init__(self, settings: Settings, sinks: dict[str, LakeSink], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.sinks = {sink.dataset.topic.name: sink for sink in sinks.values()}
        self.paused = False
        self._consumer: AIOKafkaConsumer | None = None
        self._committed: dict[TopicPartition, int] = {}
        self._drained = asyncio.Event()
        self._commit_at = 0.0

    @property
    def held_bytes(self) -> int:
        return sum(sink.held_bytes for sink in self.sinks.values())

    async def on_start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **client_kwargs(self.settings),
            group_id=f"{self.settings.app_id}-lake",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,
            rebalance_timeout_ms=10_000,
        )
        await self._consumer.start()
        self._consumer.subscribe(list(self.sinks), listener=self)

    async def on_stop(self) -> None:
        try:  # the read loop ends within one poll, writes what it holds and commits it
            await asyncio.wait_for(self._drained.wait(), _DRAIN_SECONDS)
        except TimeoutError:
            log.warning("lake: the last flushes did not land; the next start rewrites them")
        if self._consumer is not None:
            await self._consumer.stop()
        for storage in {
            id(s.writer.storage): s.writer.storage for s in self.sinks.values()
        }.values():
            await storage.close()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for sink in {self.sinks[tp.topic] for tp in revoked}:
            await sink.settle()
        for tp in revoked:
            self.sinks[tp.topic].revoke({tp.partition})
            self._committed.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # Buffers are made on each partition's first message (lazily, from the lake).
        if self.paused and self._consumer is not None:
            self._consumer.pause(*assigned)

    @Service.task
    async def _read(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        try:
            while not self.should_stop:
                self._bound_memory(consumer)
                batches = await consumer.getmany(
                    timeout_ms=self._poll_timeout_ms(), max_records=_POLL_RECORDS
                )
                for tp, messages in batches.items():
                    try:
                        await self.sinks[tp.topic].add(tp.partition, messages)
                    except StorageDown:
                        consumer.seek(tp, messages[0].offset)  # read again once it answers
                for sink in self.sinks.values():
                    if sink.broken is not None:
                        raise sink.broken  # the worker stops; its successor replays
                    sink.flush_due()
                if time.monotonic() >= self._commit_at:
                    await self._commit()
            for sink in self.sinks.values():
                await sink.flush_all()
            await self._commit()
        finally:
            self._drained.set()

    def _poll_timeout_ms(self) -> int:
        """Wait for messages at most until the next window closes (an idle topic's
        last buffer is written on time, not up to a poll later)."""
        ends = [e for sink in self.sinks.values() if (e := sink.next_window_end()) is not None]
        if not ends:
            return _POLL_MS
        return max(0, min(_POLL_MS, int((min(ends) - time.monotonic()) * 1000) + 1))

    def _bound_memory(self, consumer: AIOKafkaConsumer) -> None:
        """Pause every partition while the sinks hold too much; resume when they do not."""
        full = self.held_bytes >= self.settings.sink_max_memory
        if full and not self.paused:
            log.warning(
                "lake: %d bytes held (limit %d); pausing consumption until flushes land",
                self.held_bytes,
                self.settings.sink_max_memory,
            )
            consumer.pause(*consumer.assignment())
        elif self.paused and not full:
            log.info("lake: flushes landed; resuming consumption")
            consumer.resume(*consumer.paused())
        self.paused = full

    async def _commit(self) -> None:
        self._commit_at = time.monotonic() + _COMMIT_SECONDS
        offsets = {}
        for topic, sink in self.sinks.items():
            for partition, offset in sink.safe_offsets().items():
                tp = TopicPartition(topic, partition)
                if offset > self._committed.get(tp, -1):
                    offsets[tp] = OffsetAndMetadata(offset, "")
        if offsets:
            assert self._consumer is not None
            await self._consumer.commit(offsets)
            self._committed.update({tp: meta.offset for tp, meta in offsets.items()})


#: Messages one poll hands over at most: what a full sink can take in past its limit.
_POLL_RECORDS = 1000
#: The longest wait for messages (shorter when a window closes sooner).
_POLL_MS = 500
#: Commits at most this often (a crash replays at most this much more).
_COMMIT_SECONDS = 1.0


def lake_consumer(settings: Settings, outputs: Outputs) -> LakeConsumer:
    """The sink of every dataset, writing to the lake of ``settings``."""
    writer: Layout
    if settings.lake_format == "iceberg":
        from spotify_stream.sink.iceberg import IcebergWriter  # pyiceberg, only for it

        writer = IcebergWriter(settings, storage_for(settings))
    else:
        writer = LakeWriter(storage_for(settings), settings.parquet_row_group_rows)
    limits = Limits(settings.flush_seconds, settings.sink_max_rows, settings.sink_max_bytes)
    gate = WriteGate()
    sinks = {d.name: LakeSink(outputs, writer, d, limits, gate) for d in DATASETS}
    return LakeConsumer(settings, sinks)
