"""Lands topics in the lake: buffers per Kafka partition, Parquet per hour, then commits.

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

While storage is down a flush retries with backoff and the loop stops
polling: nothing is committed, and aiokafka's fetch buffer bounds what is
held. Malformed messages on these topics are dead-lettered by the agents that
own them (or cannot exist: our own outputs); the sink counts and skips them.
Records that do not fit the Parquet schema are dead-lettered here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from mode import Service

from spotify_stream import topics
from spotify_stream.agents.pipeline import Pipeline
from spotify_stream.ingest.catalog import dead_letter
from spotify_stream.ingest.reasons import Reason
from spotify_stream.kafka import client_kwargs
from spotify_stream.models import codec_for
from spotify_stream.models.codec import DecodeError, millis, records_in
from spotify_stream.settings import Settings
from spotify_stream.sink.buffer import Limits, PartitionBuffer
from spotify_stream.sink.objects import CURATED, flushes_after
from spotify_stream.sink.writer import LakeWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    name: str
    topic: topics.Topic
    event_time: str  # the field that decides the dt=/hr= folder


DATASETS = (
    Dataset("artists", topics.ARTISTS, "updated_at"),
    Dataset("albums", topics.ALBUMS, "updated_at"),
    Dataset("tracks_enriched", topics.ENRICHED, "updated_at"),
    Dataset("plays", topics.PLAYS, "played_at"),
    Dataset("popularity", topics.POPULARITY, "window_start"),
)


class LakeSink:
    """One dataset: its partitions' buffers, and the offsets that are safe to commit."""

    def __init__(
        self, pipeline: Pipeline, writer: LakeWriter, dataset: Dataset, limits: Limits
    ) -> None:
        self.pipeline = pipeline
        self.writer = writer
        self.dataset = dataset
        self.limits = limits
        self.buffers: dict[int, PartitionBuffer] = {}
        self._next: dict[int, int] = {}  # partition -> offset after the last message read
        self.stats: dict[str, Any] = dict.fromkeys(
            ("files", "rows", "bytes", "flushes", "failures", "skipped"), 0
        ) | {"last_flush_at": None, "last_flush_seconds": None}

    def safe_offsets(self) -> dict[int, int]:
        """partition -> the offset to commit: nothing before it is only in memory."""
        safe = {}
        for partition, next_offset in self._next.items():
            first = self.buffers[partition].first
            safe[partition] = next_offset if first is None else first
        return safe

    def revoke(self, partitions: set[int]) -> None:
        """Forget what is buffered for partitions this worker lost: their new owner replays it."""
        for partition in partitions:
            self.buffers.pop(partition, None)
            self._next.pop(partition, None)

    async def add(self, message: ConsumerRecord) -> None:
        partition, offset, value = message.partition, message.offset, message.value or b""
        buffer = self.buffers.get(partition)
        if buffer is None:
            buffer = self.buffers[partition] = await self._recover(partition, offset)
        try:
            records = [r for name, r in records_in(value) if name == self.dataset.topic.record]
        except DecodeError:
            records = []
        if not records:
            self.stats["skipped"] += 1
        elif buffer.cut_before(offset):
            await self._flush(buffer)
        now = time.monotonic()
        for record in records:
            event_ms = millis(record[self.dataset.event_time])
            buffer.add(offset, record, event_ms, len(value) // len(records), now)
        self._next[partition] = offset + 1
        if buffer.due(now):
            await self._flush(buffer)

    async def flush_due(self) -> None:
        """Flush the buffers whose window has passed (idle partitions land too)."""
        now = time.monotonic()
        for buffer in list(self.buffers.values()):
            if buffer.due(now):
                await self._flush(buffer)

    async def _recover(self, partition: int, committed: int) -> PartitionBuffer:
        keys = await self.writer.storage.keys(f"{CURATED}/{self.dataset.name}/")
        ranges = flushes_after(keys, self.dataset.name, partition, committed)
        if ranges:
            log.info(
                "%s[%d]: rewriting %d begun flush(es) from offset %d",
                self.dataset.name,
                partition,
                len(ranges),
                committed,
            )
        return PartitionBuffer.recovering(self.dataset.name, partition, self.limits, ranges)

    async def _flush(self, buffer: PartitionBuffer) -> None:
        flush = buffer.take()
        started = time.monotonic()
        delay = 1.0
        while True:
            try:
                written = await self.writer.write(flush, self.dataset.topic.record)
                break
            except Exception as exc:  # storage down: keep the offsets, retry, never skip
                self.stats["failures"] += 1
                log.warning(
                    "%s: writing offsets %d..%d failed (%s); retrying in %.0f s",
                    self.dataset.name,
                    flush.first,
                    flush.last,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        for record, reason in written.rejected:
            self._dead_letter(flush.partition, record, reason)
        if written.rejected:
            await self.pipeline.commit_point()  # dead letters durable before the offsets move
        self.stats["files"] += len(written.keys)
        self.stats["rows"] += written.rows
        self.stats["bytes"] += written.bytes
        self.stats["flushes"] += 1
        self.stats["last_flush_at"] = time.time()
        self.stats["last_flush_seconds"] = round(time.monotonic() - started, 3)

    def _dead_letter(self, partition: int, record: dict[str, Any], reason: str) -> None:
        try:
            raw = codec_for(self.dataset.topic.record).encode(record)
        except Exception:  # the dead letter must not fail too
            raw = repr(record).encode()
        letter = dead_letter(
            Reason.NOT_PARQUET,
            reason,
            self.dataset.topic.name,
            raw,
            self.pipeline.settings.deadletter_max_raw_bytes,
            partition=partition,
        )
        self.pipeline.queue_dead_letter(f"{self.dataset.name}:{partition}".encode(), letter)


class LakeConsumer(Service, ConsumerRebalanceListener):
    """The sink's consumer group: reads every dataset topic, feeds the sinks, commits."""

    def __init__(self, settings: Settings, sinks: dict[str, LakeSink], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.sinks = {sink.dataset.topic.name: sink for sink in sinks.values()}
        self._consumer: AIOKafkaConsumer | None = None
        self._committed: dict[TopicPartition, int] = {}

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
        if self._consumer is not None:
            await self._consumer.stop()
        for storage in {
            id(s.writer.storage): s.writer.storage for s in self.sinks.values()
        }.values():
            await storage.close()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.sinks[tp.topic].revoke({tp.partition})
            self._committed.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        pass  # buffers are made on each partition's first message (lazily, from the lake)

    @Service.task
    async def _read(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self.should_stop:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, messages in batches.items():
                sink = self.sinks[tp.topic]
                for message in messages:
                    await sink.add(message)
            for sink in self.sinks.values():
                await sink.flush_due()
            await self._commit()

    async def _commit(self) -> None:
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
