"""One worker process: enrichment and lake throughput next to the raw limit, and freshness.

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
   Once with the worker's lake sink off (``lake_sink=False``: the stream core
   alone), once with it on (file backend, a 1 s window) for each
   ``--lake-formats`` (the Hive layout's objects; Iceberg tables, a commit
   per dataset and window): then "into the lake" is the tracks over the time
   from the first track consumed to the flush that lands the last enriched
   track (its last second is that window).

5. the peer (one record per message only): Quix Streams doing the same job
   (``bench/peer.py``) on the same topics, timed the same way; its features
   are read into its join store before the tracks are sent.

Each form runs ``--repeat`` times on fresh brokers; the table shows medians
(this machine's neighbours make single runs vary by about 10%). Beside the
rates, the cores the worker, its main thread and the broker kept busy from the
first track consumed to the end of the sink-on run (Linux /proc): a main
thread short of 1.0 on a machine with cores to spare waits (for the GIL, or
for the scheduler), and is not bound by its own CPU.

Freshness: a worker with the default settings (60 s window), and once its
sink has joined its group, plays simulated at 2,000/s for ``--freshness``
seconds; the bench lists the lake every 0.1 s and takes, for every play, the
time from its ``played_at`` to its object's first sighting.

    python -m bench pipeline [--tracks 50000] [--batch 2000] [--repeat 3] [--forms one,batch]
                             [--lake-formats hive,iceberg] [--freshness 150] [--no-peer]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import CpuWindow, peak_rss_mb, stack_settings, worker_failed
from spotify_stream import topics
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.catalog import CatalogReader
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.plays import run_simulation
from spotify_stream.ingest.producer import produce
from spotify_stream.ingest.sources import fetch_sources
from spotify_stream.kafka import PartitionedSender, RecordBatcher, ensure_topics, start_producer
from spotify_stream.models import codec_for
from spotify_stream.models.codec import records_in
from spotify_stream.settings import Settings


async def raw_limit(settings: Settings, expected: int, topic: str = topics.TRACKS.name) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
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


def wait_records(worker: WorkerProcess, topic: str, count: int, interval: float = 0.3) -> dict:
    entry = wait_for(
        lambda: (e := worker.topic_stats(topic)).get("records_in", 0) >= count and e,
        600,
        interval,
    )
    if not entry:
        raise worker_failed(worker, f"the worker did not consume {count} records of {topic}")
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


def run(
    data: Path,
    tracks: int,
    per_message: int,
    workdir: Path,
    lake_format: str | None,
    with_peer: bool,
) -> dict[str, float]:
    """One timed run; ``lake_format`` None: the lake sink off."""
    lake = lake_format is not None
    with EmbeddedBroker() as broker:
        settings = stack_settings(
            broker,
            workdir,
            input_batch_records=per_message,
            lake_sink=lake,
            lake_format=lake_format or "hive",
            flush_seconds=1,  # the backlog's last objects land 1 s after its last records
        )
        track_messages = asyncio.run(send_catalog(settings, data))
        assert len(track_messages) == tracks
        with WorkerProcess(settings, workdir, loglevel="warn") as worker:
            wait_records(worker, topics.AUDIO_FEATURES.name, tracks)
        if with_peer:
            peer(settings, workdir, "tracks", tracks, lake, preload=True)
        asyncio.run(send(settings, track_messages))
        raw = asyncio.run(raw_limit(settings, tracks))
        # Same state directory: the features table is there (and replayed from its changelog).
        with WorkerProcess(settings, workdir, loglevel="warn") as worker:
            cpu = CpuWindow(worker.process.pid, broker.pid)
            wait_records(worker, topics.TRACKS.name, 1, interval=0.05)
            cpu.start()
            entry = wait_records(worker, topics.TRACKS.name, tracks)
            figures = {"raw": raw, "enrich": tracks / (entry["last_at"] - entry["first_at"])}
            if lake:
                landed = wait_for(lambda: _landed(worker, tracks), 600)
                if not landed:
                    raise worker_failed(worker, "the lake did not receive every track")
                figures["lake"] = tracks / (landed["last_flush_at"] - entry["first_at"])
            figures |= cpu.stop()
            figures["worker_rss_mb"] = peak_rss_mb(worker.process.pid)
        if with_peer:
            done = peer(settings, workdir, "tracks", tracks, lake)
            end = done["landed_at"] if lake else done["last_at"]
            figures["peer"] = tracks / (end - done["first_at"])
            figures["peer_rss_mb"] = done["rss_mb"]
    return figures


def peer(
    settings: Settings, workdir: Path, job: str, records: int, lake: bool, preload: bool = False
) -> dict:
    """The same job in Quix Streams (``bench/peer.py``), in a process of its own."""
    command = [
        sys.executable,
        "-m",
        "bench.peer",
        job,
        settings.bootstrap_servers[0],
        str(workdir / "peer_state"),
        "--records",
        str(records),
        *(["--lake", str(workdir / "peer_lake")] if lake else []),
        *(["--preload"] if preload else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode:
        raise SystemExit(f"the peer failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1]) if not preload else {}


#: The CPU figures of a run (``CpuWindow``), from the first track consumed to the end.
_CPU = ("worker_cores", "main_cores", "broker_cores")


def _landed(worker: WorkerProcess, tracks: int) -> dict | None:
    sink = worker.get("/pipeline/stats")["lake"]["tracks_enriched"]
    return sink if sink["rows"] >= tracks else None


def freshness(workdir: Path, seconds: float, rate: int) -> tuple[list[float], float]:
    """Seconds from each play's event time to its object being visible in the lake,
    with the default window; and that window."""
    with EmbeddedBroker() as broker:
        settings = stack_settings(broker, workdir)
        generate(workdir / "data", 1000, seed=2)
        asyncio.run(produce(settings, str(workdir / "data")))
        plays = workdir / "lake" / "curated" / "plays"
        seen: dict[Path, float] = {}
        with WorkerProcess(settings, workdir, loglevel="warn") as worker:
            # Steady state: the sink has joined its group (it reads the catalog's artists).
            wait_for(lambda: worker.get("/pipeline/stats")["lake"]["artists"]["read"] > 0, 60)
            simulation = threading.Thread(
                target=lambda: asyncio.run(
                    run_simulation(
                        settings,
                        rate=rate,
                        users=500,
                        duration=seconds,
                        seed=1,
                        stop=asyncio.Event(),
                    )
                )
            )
            simulation.start()
            deadline = time.time() + seconds + settings.flush_seconds + 15
            while time.time() < deadline:
                now = time.time()
                for path in plays.rglob("*.parquet") if plays.is_dir() else ():
                    seen.setdefault(path, now)
                time.sleep(0.1)
            simulation.join()
    lags = []
    for path, visible in seen.items():
        played = pq.read_table(path, columns=["played_at"]).column(0).cast(pa.int64())
        lags += [visible - ms / 1000 for ms in played.to_pylist()]
    return lags, settings.flush_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=2000, help="records per Batch message")
    parser.add_argument("--repeat", type=int, default=3, help="runs per input form")
    parser.add_argument(
        "--forms",
        default="one,batch",
        help="input forms to time: one (record per message), batch, or both",
    )
    parser.add_argument(
        "--lake-formats",
        default="hive",
        help="lake layouts of the sink-on runs: hive, iceberg, or both (hive,iceberg)",
    )
    parser.add_argument(
        "--freshness", type=float, default=150, help="seconds of plays for the freshness run"
    )
    parser.add_argument(
        "--no-peer", action="store_true", help="leave out Quix Streams doing the same job"
    )
    args = parser.parse_args()
    with_peer = not args.no_peer and importlib.util.find_spec("quixstreams") is not None
    if not with_peer and not args.no_peer:
        print("the peer (Quix Streams) is not installed: pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate(data, args.tracks, seed=1)
        rows = []
        forms = {
            "one": ("one record per message", 1),
            "batch": (f"Batch of {args.batch}", args.batch),
        }
        for name in args.forms.split(","):
            label, per_message = forms[name]
            peer_here = with_peer and per_message == 1  # Quix Streams reads one per message
            formats = args.lake_formats.split(",")
            runs = {fmt: {key: [] for key in _COLUMNS} for fmt in formats}
            for i in range(args.repeat):
                for lake in (None, *formats):
                    workdir = Path(tmp) / f"run_{per_message}_{i}_{lake}"  # Quix: no dashes
                    workdir.mkdir()
                    # the peer once per form and repeat: with the sink off and the first layout
                    with_peer = peer_here and lake in (None, formats[0])
                    figures = run(data, args.tracks, per_message, workdir, lake, with_peer)
                    for fmt in formats:  # the runs without a lake count for every layout
                        if lake in (None, fmt):
                            runs[fmt]["raw"].append(figures["raw"])
                    if lake is not None:
                        for key in ("enrich", "lake", *_CPU, "worker_rss_mb"):
                            runs[lake][key].append(figures[key])
                        if with_peer:
                            for fmt in formats:
                                runs[fmt]["peer_lake"].append(figures["peer"])
                                runs[fmt]["peer_rss_mb"].append(figures["peer_rss_mb"])
                    else:
                        for fmt in formats:
                            runs[fmt]["core"].append(figures["enrich"])
                            if with_peer:
                                runs[fmt]["peer_core"].append(figures["peer"])
                    print(
                        f"{label}, run {i + 1}/{args.repeat}, lake sink "
                        f"{'off' if lake is None else f'on ({lake})'}: "
                        + ", ".join(
                            f"{k} {v:.2f}"
                            if k in _CPU
                            else f"{k} {v:,.0f} MB"
                            if k.endswith("rss_mb")
                            else f"{k} {v:,.0f}/s"
                            for k, v in figures.items()
                        ),
                        flush=True,
                    )
            for fmt in formats:
                medians = {k: statistics.median(v) if v else None for k, v in runs[fmt].items()}
                rows.append((f"{label}, {_LAYOUTS[fmt]}", medians))
        lags: list[float] = []
        if args.freshness > 0:
            workdir = Path(tmp) / "freshness"
            workdir.mkdir()
            lags, window = freshness(workdir, args.freshness, rate=2000)
    print(
        f"\n{args.tracks:,} tracks, 8 partitions, one worker process, embedded broker, "
        f"median of {args.repeat} (raw: of {2 * args.repeat}); peer: Quix Streams "
        "(join_asof with the features, album and artist from memory, no cluster assignment)\n"
    )
    print(
        "| input form, lake layout | raw consume + decode (rec/s) "
        "| enrichment, sink off (tracks/s) "
        "| / raw | peer, sink off | worker / peer "
        "| into the lake, end to end (tracks/s) | / raw | peer, into its lake | worker / peer "
        f"| cores in use, sink on (of {os.cpu_count()}): worker / its main thread / broker "
        "| peak RSS, sink on: worker / peer (MB) |"
    )
    print("| --- |" + " ---: |" * 11)
    for label, m in rows:
        print(
            f"| {label} | {m['raw']:,.0f} | {m['core']:,.0f} | {m['core'] / m['raw']:.2f} "
            f"| {_rate(m['peer_core'])} | {_ratio(m['core'], m['peer_core'])} "
            f"| {m['lake']:,.0f} | {m['lake'] / m['raw']:.2f} "
            f"| {_rate(m['peer_lake'])} | {_ratio(m['lake'], m['peer_lake'])} "
            f"| {m['worker_cores']:.2f} / {m['main_cores']:.2f} / {m['broker_cores']:.2f} "
            f"| {m['worker_rss_mb']:,.0f} / {_rate(m['peer_rss_mb'])} |"
        )
    if lags:
        lags.sort()
        print(
            f"\nfreshness (play time to object visible), window {window:g} s, "
            f"{len(lags):,} plays at 2,000/s for {args.freshness:g} s: "
            f"median {statistics.median(lags):.1f} s, p99 {lags[int(len(lags) * 0.99)]:.1f} s, "
            f"max {lags[-1]:.1f} s"
        )


_LAYOUTS = {"hive": "Hive layout", "iceberg": "Iceberg tables"}

#: The medians in the table.
_COLUMNS = (
    "raw",
    "core",
    "enrich",
    "lake",
    *_CPU,
    "worker_rss_mb",
    "peer_core",
    "peer_lake",
    "peer_rss_mb",
)


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _ratio(worker: float, peer: float | None) -> str:
    return "–" if peer is None else f"{worker / peer:.2f}"


if __name__ == "__main__":
    main()
