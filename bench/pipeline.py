"""Enrichment throughput of one worker process, next to the raw limit of the same messages.

For each input form (one record per message; the opt-in Batch form), on a
fresh embedded broker:

1. produce artists, albums and audio features (cleaned from the generated
   files, as `produce` does); run a worker until it has stored every
   feature; stop it;
2. produce the tracks (so they wait in Kafka);
3. raw limit: an aiokafka consumer reads the tracks topic and decodes every
   record with fastavro (the codec the agents use), nothing else;
4. start a worker (its features table comes back from the changelog first)
   and time its enrichment agent from the first to the last track message:
   every track is joined with album, artist and features, encoded and written
   to spotify.tracks.enriched, acknowledged before its offset is committed.
   The worker's lake sink is off (``lake_sink=False``): this is the stream
   core alone.

Each form runs ``--repeat`` times on fresh brokers; the table shows medians
(this machine's neighbours make single runs vary by about 10%).

    python -m bench pipeline [--tracks 50000] [--batch 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from spotify_stream import topics
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.catalog import CatalogReader
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.sources import fetch_sources
from spotify_stream.kafka import PartitionedSender, RecordBatcher, ensure_topics, start_producer
from spotify_stream.models import codec_for
from spotify_stream.models.codec import records_in
from spotify_stream.settings import Settings


async def raw_limit(settings: Settings, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topics.TRACKS.name, p) for p in range(settings.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        records, started = 0, time.perf_counter()
        while records < expected:
            for messages in (await consumer.getmany(timeout_ms=1000, max_records=20_000)).values():
                for message in messages:
                    records += len(records_in(message.value))
        return records / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def wait_records(worker: WorkerProcess, topic: str, count: int) -> dict:
    entry = wait_for(
        lambda: (e := worker.topic_stats(topic)).get("records_in", 0) >= count and e, 600
    )
    if not entry:
        raise SystemExit(
            f"the worker did not consume {count} records of {topic}; its log ends:\n"
            + worker.tail(40)
        )
    return entry


async def send_catalog(settings: Settings, data: Path) -> list[tuple[str, bytes, bytes]]:
    """Send everything but the tracks; return the tracks, encoded, for later."""
    files = await fetch_sources(str(data), settings.data_dir / "sources", None)
    reader = CatalogReader(
        files,
        max_field_chars=settings.csv_max_field_chars,
        max_raw_bytes=settings.deadletter_max_raw_bytes,
    )
    messages = [
        (topic.name, key.encode(), codec_for(topic.record).encode(record))
        for topic, key, record in reader.records()
    ]
    await send(settings, [m for m in messages if m[0] != topics.TRACKS.name])
    return [m for m in messages if m[0] == topics.TRACKS.name]


async def send(settings: Settings, messages: list[tuple[str, bytes, bytes]]) -> None:
    partitions = await ensure_topics(settings, [t.name for t in topics.ALL])
    producer = await start_producer(settings)
    try:
        batcher = RecordBatcher(
            PartitionedSender(producer, partitions), settings.input_batch_records
        )
        for topic, key, value in messages:
            await batcher.send(topic, key, value, topic != topics.DEADLETTER.name)
        await batcher.flush()
    finally:
        await producer.stop()


def run(data: Path, tracks: int, per_message: int, workdir: Path) -> tuple[float, float]:
    with EmbeddedBroker() as broker:
        settings = Settings(
            broker=f"kafka://{broker.bootstrap}",
            producer_idempotence="off",
            data_dir=workdir / "state",
            input_batch_records=per_message,
            lake_sink=False,
            _env_file=None,
        )
        track_messages = asyncio.run(send_catalog(settings, data))
        assert len(track_messages) == tracks
        with WorkerProcess(settings, workdir, loglevel="warn") as worker:
            wait_records(worker, topics.AUDIO_FEATURES.name, tracks)
        asyncio.run(send(settings, track_messages))
        raw = asyncio.run(raw_limit(settings, tracks))
        # Same state directory: the features table is there (and replayed from its changelog).
        with WorkerProcess(settings, workdir, loglevel="warn") as worker:
            entry = wait_records(worker, topics.TRACKS.name, tracks)
    return raw, tracks / (entry["last_at"] - entry["first_at"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=2000, help="records per Batch message")
    parser.add_argument("--repeat", type=int, default=3, help="runs per input form")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate(data, args.tracks, seed=1)
        rows = []
        for label, per_message in (
            ("one record per message", 1),
            (f"Batch of {args.batch}", args.batch),
        ):
            raws, workers = [], []
            for i in range(args.repeat):
                workdir = Path(tmp) / f"run-{per_message}-{i}"
                workdir.mkdir()
                raw, worker = run(data, args.tracks, per_message, workdir)
                raws.append(raw)
                workers.append(worker)
                print(
                    f"{label}, run {i + 1}/{args.repeat}: raw {raw:,.0f}/s, worker {worker:,.0f}/s"
                )
            rows.append((label, statistics.median(raws), statistics.median(workers)))
    print(
        f"\n{args.tracks:,} tracks, 8 partitions, one worker process, embedded broker, "
        f"median of {args.repeat}\n"
    )
    print("| input form | raw consume + decode (rec/s) | worker enrichment (tracks/s) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for label, raw, worker in rows:
        print(f"| {label} | {raw:,.0f} | {worker:,.0f} | {worker / raw:.2f} |")


if __name__ == "__main__":
    main()
