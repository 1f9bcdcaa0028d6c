"""What every agent of a worker shares: settings, the batch sender, stats, decoding.

One producer per worker sends outputs, changelogs, repartitions and dead
letters in per-partition batches. ``run_agent`` takes the records of a bulk
channel a fetch at a time (``faust_ext.bulk``: aiokafka's records, their
timestamps in milliseconds), hands them to the agent's handler, and
acknowledges them by the commit protocol (``commits``): only once everything
the handler sent is acknowledged by Kafka, while the next fetch is processed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from spotify_stream import topics
from spotify_stream.commits import Checkpoints
from spotify_stream.faust_ext.bulk import BulkChannel
from spotify_stream.faust_ext.partitioned import PartitionedTable
from spotify_stream.kafka import PartitionedSender, ensure_worker_topics, start_producer
from spotify_stream.models import codec_for
from spotify_stream.models.codec import DecodeError, encoded_records_in, single_records_in
from spotify_stream.models.deadletters import Reason, dead_letter
from spotify_stream.settings import Settings
from spotify_stream.stats import Stats
from spotify_stream.validation import Rules, rules_for

log = logging.getLogger(__name__)

Record = dict[str, Any]
#: A message as an agent gets it.
Message = ConsumerRecord


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = Stats()
        self.producer: AIOKafkaProducer | None = None
        self.sender: PartitionedSender | None = None
        self.tables: list[PartitionedTable] = []
        self._deadletter = codec_for(topics.DEADLETTER.record)
        self._queued_dead_letters: list[tuple[bytes, Record]] = []
        self._rules: dict[tuple[str, str, str], Rules] = {}

    def internal(self, name: str) -> str:
        return topics.internal(self.settings.app_id, name)

    async def start(self) -> dict[str, int]:
        """Create every topic the worker uses, then its producer."""
        _, partitions = await ensure_worker_topics(self.settings)
        self.producer = await start_producer(self.settings)
        self.sender = PartitionedSender(self.producer, partitions)
        for table in self.tables:
            table.sender = self.sender
        return partitions

    async def stop(self) -> None:
        if self.producer is not None:
            try:
                await self.flush()
            finally:
                await self.producer.stop()
                for table in self.tables:
                    table.close()

    def table(self, table: Any) -> PartitionedTable:
        adapter = PartitionedTable(table, self.sender)
        self.tables.append(adapter)
        return adapter

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        assert self.sender is not None
        await self.sender.send(topic, key, value, partition=partition)

    async def ship(self) -> None:
        """Hand everything sent so far, and queued dead letters, to Kafka."""
        assert self.sender is not None
        queued, self._queued_dead_letters = self._queued_dead_letters, []
        for key, record in queued:
            await self.sender.send(topics.DEADLETTER.name, key, self._deadletter.encode(record))
        await self.sender.ship_open_batches()

    async def flush(self) -> None:
        """Wait until Kafka acknowledged everything handed over; then each state
        store records the changelog offset its data covers (``commits``, step 3)."""
        assert self.sender is not None
        await self.sender.flush()
        for table in self.tables:
            table.record_offsets()

    async def commit_point(self) -> None:
        """Wait until everything sent so far (and queued dead letters) is acknowledged
        (``commits``: steps 2 and 3)."""
        await Checkpoints(self.ship, self.flush).durable()

    async def run_agent(
        self, channel: BulkChannel, handle: Callable[[list[Message]], Awaitable[None]]
    ) -> None:
        """Feed ``handle`` the channel's fetches; acknowledge each once its output is
        durable (``commits``)."""
        checkpoints = Checkpoints(self.ship, self.flush)
        async for fetch in channel:
            await handle(fetch.records)
            await checkpoints.acknowledge_after(lambda fetch=fetch: channel.acknowledge(fetch))

    async def check(self, messages: list[Message], expected: dict[str, tuple[str, str]]) -> None:
        """Dead-letter the bad messages of topics others read (the dimensions, which
        every worker's broadcast reader takes and skips the bad of): ``expected`` maps
        a topic to its record type and key field. The member owning a partition does it."""
        for message in messages:
            self.records(message, *expected[message.topic])

    def records(self, message: Message, expected: str, key_field: str) -> list[Record]:
        """The valid records of one message; the others go to the dead-letter topic."""
        return [record for record, _ in self.encoded_records(message, expected, key_field)]

    def encoded_records(
        self,
        message: Message,
        expected: str,
        key_field: str,
        as_written: bool = False,
        fields: Sequence[str] | None = None,
    ) -> list[tuple[Record, bytes]]:
        """The valid records of one message (``validation.Rules``), each with its own
        encoding; the others, and the items of a ``Batch`` that do not decode, go to
        the dead-letter topic (the good items of a ``Batch`` are kept).

        ``as_written``: logical types as Avro values (see ``AvroCodec``);
        ``fields``: the fields the caller reads (``encoded_records_in``), with
        ``key_field``.
        """
        value = message.value or b""
        try:
            decoded, undecodable = encoded_records_in(value, as_written, fields)
        except DecodeError as exc:
            self.stats.consumed(message.topic, message.partition, message.offset, 0)
            self.dead_letter(message, Reason.UNDECODABLE, str(exc))
            return []
        self.stats.consumed(message.topic, message.partition, message.offset, len(decoded))
        for item, reason in undecodable:
            self.dead_letter(message, Reason.UNDECODABLE, f"an item of a Batch: {reason}", item)
        rules = self.rules(message.topic, expected, key_field)
        good = []
        for name, record, encoded in decoded:
            problem = rules.broken(name, record, message.partition, message.timestamp)
            if problem is None:
                good.append((record, encoded))
            else:
                self.dead_letter(message, *problem, encoded if encoded is not value else None)
        return good

    def encoded_records_of(
        self,
        messages: Sequence[Message],
        expected: str,
        key_field: str,
        fields: Sequence[str] | None = None,
    ) -> list[tuple[Record, bytes]]:
        """``encoded_records`` (as written) of many messages of one topic partition, in
        order: messages of one record each, of one schema, are decoded as one block
        (``models.block``)."""
        return [
            found
            for _, records in self.encoded_records_by_message(messages, expected, key_field, fields)
            for found in records
        ]

    def encoded_records_by_message(
        self,
        messages: Sequence[Message],
        expected: str,
        key_field: str,
        fields: Sequence[str] | None = None,
    ) -> list[tuple[Message, list[tuple[Record, bytes]]]]:
        """``encoded_records_of``, each message with its valid records."""
        values = [message.value or b"" for message in messages]
        block = single_records_in(values, fields) if messages else None
        if block is None:
            return [
                (message, self.encoded_records(message, expected, key_field, True, fields))
                for message in messages
            ]
        rules = self.rules(messages[0].topic, expected, key_field)
        consumed = self.stats.consumed
        out = []
        for message, (name, record, encoded) in zip(messages, block, strict=True):
            consumed(message.topic, message.partition, message.offset)
            problem = rules.broken(name, record, message.partition, message.timestamp)
            if problem is None:
                out.append((message, [(record, encoded)]))
            else:
                self.dead_letter(message, *problem)
                out.append((message, []))
        return out

    def rules(self, topic: str, record: str, key_field: str) -> Rules:
        """The rules of records of type ``record`` keyed by ``key_field`` on ``topic``."""
        rules = self._rules.get((topic, record, key_field))
        if rules is None:
            partitions = self.sender.partitions.get(topic) if self.sender else None
            rules = self._rules[topic, record, key_field] = rules_for(
                topic, record, key_field, partitions, self.settings.max_clock_skew
            )
        return rules

    def dead_letter(
        self, message: Message, reason: Reason, detail: str, raw: bytes | None = None
    ) -> None:
        """Queue a dead letter for ``message``, or for ``raw``, one record of it (sent
        with the next commit point)."""
        record = dead_letter(
            reason,
            detail,
            message.topic,
            message.value or b"" if raw is None else raw,
            self.settings.deadletter_max_raw_bytes,
            partition=message.partition,
            offset=message.offset,
        )
        log.warning(
            "dead letter %s:%d:%d %s: %s",
            message.topic,
            message.partition,
            message.offset,
            reason,
            detail,
        )
        self.queue_dead_letter(
            f"{message.topic}:{message.partition}:{message.offset}".encode(), record
        )

    def queue_dead_letter(self, key: bytes, record: Record) -> None:
        """Count ``record`` (a DeadLetter) and send it with the next commit point."""
        self.stats.dead_letters[record["reason"]] += 1
        self._queued_dead_letters.append((key, record))
