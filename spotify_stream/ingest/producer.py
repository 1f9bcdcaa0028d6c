"""Sends the catalog to Kafka: one Avro message per record, keyed by entity id.

Records are read, cleaned and encoded in a worker thread, a chunk at a time, so
the event loop stays free for the Kafka client. Messages go out in
per-partition batches; partitions are chosen with Kafka's default murmur2
partitioner, so a key lands where any Java or librdkafka client would put it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.errors import KafkaError

from spotify_stream import topics
from spotify_stream.errors import BrokerUnavailable, UsageError
from spotify_stream.ingest.catalog import CatalogReader, FileStats
from spotify_stream.ingest.sources import fetch_sources
from spotify_stream.kafka import PartitionedSender, RecordBatcher, ensure_topics, start_producer
from spotify_stream.models import codec_for
from spotify_stream.settings import Settings

Message = tuple[str, bytes, bytes]  # topic, key, value
ProgressCallback = Callable[[str, FileStats], None]


@dataclass
class ProduceResult:
    files: dict[str, FileStats]
    messages: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def file_errors(self) -> list[str]:
        return [s.error for s in self.files.values() if s.error]

    @property
    def rows_read(self) -> int:
        return sum(s.read for s in self.files.values())


def _encoded(records: Iterator[tuple[topics.Topic, str, dict]]) -> Iterator[Message]:
    codecs = {t.name: codec_for(t.record) for t in topics.ALL}
    for topic, key, record in records:
        yield topic.name, key.encode(), codecs[topic.name].encode(record)


async def produce(
    settings: Settings,
    source: str,
    *,
    rate: float | None = None,
    limit: int | None = None,
    stop: asyncio.Event | None = None,
    progress: ProgressCallback | None = None,
    chunk_size: int = 2000,
) -> ProduceResult:
    """Produce the entity files at ``source`` (directory or s3:// prefix)."""
    started = time.monotonic()
    files = await fetch_sources(source, Path(settings.data_dir) / "sources", settings.s3_endpoint)
    if not any(files.values()):
        raise UsageError(f"none of the entity files is in {source} (expected {', '.join(files)})")
    reader = CatalogReader(
        files,
        max_field_chars=settings.csv_max_field_chars,
        max_raw_bytes=settings.deadletter_max_raw_bytes,
        limit=limit,
    )
    result = ProduceResult(files=reader.stats)
    partitions = await ensure_topics(settings, [t.name for t in topics.ALL])
    producer = await start_producer(settings)
    sender = RecordBatcher(PartitionedSender(producer, partitions), settings.input_batch_records)
    stop = stop or asyncio.Event()
    if rate:
        chunk_size = max(1, min(chunk_size, int(rate / 10)))
    messages = _encoded(reader.records())

    def next_chunk() -> list[Message]:
        return list(itertools.islice(messages, chunk_size))

    def report() -> None:
        if progress:
            for name, stats in reader.stats.items():
                progress(name, stats)

    sent = 0
    sending_since = time.monotonic()
    pending = asyncio.ensure_future(asyncio.to_thread(next_chunk))
    try:
        while not stop.is_set():
            chunk = await pending
            if not chunk:
                break
            # Read the next chunk while this one is handed to Kafka.
            pending = asyncio.ensure_future(asyncio.to_thread(next_chunk))
            for topic, key, value in chunk:
                await sender.send(topic, key, value, topic != topics.DEADLETTER.name)
            sent += len(chunk)
            report()
            if rate:
                await sender.ship_open_batches()  # a throttled chunk goes out as released
                ahead = sent / rate - (time.monotonic() - sending_since)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        result.interrupted = stop.is_set()
        if result.interrupted:
            # Rows already read are counted in the summary, so they are sent too.
            for topic, key, value in await pending:
                await sender.send(topic, key, value, topic != topics.DEADLETTER.name)
        await sender.flush()
        report()
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka failed while producing: {exc}") from None
    finally:
        result.messages = sender.records  # records, whichever form carried them
        await producer.stop()
    result.seconds = time.monotonic() - started
    return result
