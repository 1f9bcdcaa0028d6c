"""What every agent of a worker shares: settings, the batch sender, stats, decoding.

One producer per worker sends outputs, changelogs, repartitions and dead
letters in per-partition batches. An agent hands a batch of events in, sends
what it produces and calls ``commit_point``; Faust acknowledges the events
only after that returns, so nothing is acknowledged before its results are
durable in Kafka (at-least-once).
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from faust.types import EventT

from spotify_stream import topics
from spotify_stream.ingest.catalog import dead_letter
from spotify_stream.ingest.reasons import Reason
from spotify_stream.kafka import PartitionedSender, ensure_topics, partition_for, start_producer
from spotify_stream.models import codec_for
from spotify_stream.models.codec import DecodeError, encoded_records_in
from spotify_stream.settings import Settings
from spotify_stream.stats import Stats
from spotify_stream.tables.partitioned import PartitionedTable

log = logging.getLogger(__name__)

Record = dict[str, Any]


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = Stats()
        self.producer: AIOKafkaProducer | None = None
        self.sender: PartitionedSender | None = None
        self.tables: list[PartitionedTable] = []
        self._deadletter = codec_for(topics.DEADLETTER.record)
        self._queued_dead_letters: list[tuple[bytes, Record]] = []

    def internal(self, name: str) -> str:
        return topics.internal(self.settings.app_id, name)

    async def start(self, topic_names: list[str]) -> dict[str, int]:
        """Create every topic the worker uses, then its producer."""
        partitions = await ensure_topics(self.settings, topic_names)
        self.producer = await start_producer(self.settings)
        self.sender = PartitionedSender(self.producer, partitions)
        for table in self.tables:
            table.sender = self.sender
        return partitions

    async def stop(self) -> None:
        if self.producer is not None:
            try:
                await self.sender.flush()
            finally:
                await self.producer.stop()

    def table(self, table: Any) -> PartitionedTable:
        adapter = PartitionedTable(table, self.sender)
        self.tables.append(adapter)
        return adapter

    async def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        assert self.sender is not None
        await self.sender.send(topic, key, value)

    async def commit_point(self) -> None:
        """Wait until everything sent so far (and queued dead letters) is acknowledged."""
        assert self.sender is not None
        queued, self._queued_dead_letters = self._queued_dead_letters, []
        for key, record in queued:
            await self.sender.send(topics.DEADLETTER.name, key, self._deadletter.encode(record))
        await self.sender.flush()

    def records(self, event: EventT, expected: str, key_field: str) -> list[Record]:
        """The valid records of one message; the others go to the dead-letter topic."""
        return [record for record, _ in self.encoded_records(event, expected, key_field)]

    def encoded_records(
        self, event: EventT, expected: str, key_field: str
    ) -> list[tuple[Record, bytes]]:
        """The valid records of one message, each with its own encoding; the others go
        to the dead-letter topic.

        Valid: decodable, of the topic's record type, with an id, and in the
        partition its id hashes to (co-partitioned joins depend on it).
        """
        message = event.message
        value = message.value or b""
        try:
            decoded = encoded_records_in(value)
        except DecodeError as exc:
            self.stats.consumed(message.topic, message.partition, message.offset, 0)
            self.dead_letter(event, Reason.UNDECODABLE, str(exc))
            return []
        self.stats.consumed(message.topic, message.partition, message.offset, len(decoded))
        good = []
        partitions = self.sender.partitions.get(message.topic) if self.sender else None
        for name, record, encoded in decoded:
            if name != expected:
                self.dead_letter(
                    event, Reason.WRONG_RECORD_TYPE, f"a {name} on a topic of {expected}"
                )
                continue
            key = record.get(key_field)
            if not key:
                self.dead_letter(event, Reason.MISSING_ID, f"{key_field} is empty")
                continue
            if partitions and partition_for(key.encode(), partitions) != message.partition:
                self.dead_letter(
                    event,
                    Reason.MISROUTED,
                    f"{key_field}={key} belongs in partition "
                    f"{partition_for(key.encode(), partitions)}, not {message.partition}",
                )
                continue
            good.append((record, encoded))
        return good

    def dead_letter(self, event: EventT, reason: Reason, detail: str) -> None:
        """Queue a dead letter for ``event``'s message (sent with the next commit point)."""
        message = event.message
        record = dead_letter(
            reason,
            detail,
            message.topic,
            message.value or b"",
            self.settings.deadletter_max_raw_bytes,
            partition=message.partition,
            offset=message.offset,
        )
        self.stats.dead_letters[str(reason)] += 1
        log.warning(
            "dead letter %s:%d:%d %s: %s",
            message.topic,
            message.partition,
            message.offset,
            reason,
            detail,
        )
        self._queued_dead_letters.append(
            (f"{message.topic}:{message.partition}:{message.offset}".encode(), record)
        )
