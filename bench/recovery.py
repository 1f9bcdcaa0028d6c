"""Time to resume after a restart: a worker holding N tracks stopped, started again.

For each size, on a fresh embedded broker: produce the generated catalog; run a
worker until every track is joined and labelled; stop it. Then start it again
on the same state directory three ways, and time each from the process start
to the first new record processed (a changed track, sent as the worker starts):

- **stores keep their offsets** (today): each store holds the changelog offset
  its data covers, and recovery reads the changelog after it;
- **stores without offsets** (before incremental recovery): the offset keys are
  removed from the stores first, so recovery reads every changelog from the
  start, as it did before;
- **after SIGKILL** (once per size): the worker changes every track (a new version
  of each is sent), commits, and is killed; RocksDB's write-ahead log is off, so
  the stores are back at their last memtable flush and recovery reads the
  changelog from that flush's offset.

Each time is split at the group join (the worker got its partitions; how long
that takes depends on the broker and on how the last member left, not on the
state), and beside it are the changelog records recovery read and its own
seconds (``/pipeline/stats`` ``recovery``). After the join, the rest is the
dimension store (rebuilt from the artists and albums topics on every start) and
the first batch. Medians of ``--repeat`` restarts each.

    python -m bench recovery [--tracks 100000,1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rocksdict import Rdict

from bench import stack_settings, worker_failed
from spotify_stream import topics
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.catalog import CatalogReader
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.producer import produce
from spotify_stream.ingest.sources import fetch_sources
from spotify_stream.kafka import PartitionedSender, start_producer
from spotify_stream.models import codec_for
from spotify_stream.settings import Settings

_FAUST_OFFSET_KEY = b"__faust\x00offset__"


def stats_of(worker: WorkerProcess) -> dict:
    """``/pipeline/stats``, or nothing while the worker is too busy to answer in 5 s."""
    try:
        return worker.get("/pipeline/stats")
    except TimeoutError:
        return {}


def settled(worker: WorkerProcess, tracks: int) -> bool:
    stats = stats_of(worker)
    return bool(stats) and (
        stats["topics"].get(topics.TRACKS.name, {}).get("records_in", 0) >= tracks
        and stats["pending_joins"] == 0
        and stats["unlabelled_tracks"] == 0
    )


async def read_tracks(settings: Settings, data: Path) -> list[dict]:
    files = await fetch_sources(str(data), settings.data_dir / "sources", None)
    reader = CatalogReader(
        files,
        max_field_chars=settings.csv_max_field_chars,
        max_raw_bytes=settings.deadletter_max_raw_bytes,
    )
    return [record for topic, _, record in reader.records() if topic is topics.TRACKS]


async def send_versions(settings: Settings, tracks: list[dict], label: str) -> None:
    """A newer version of each of ``tracks``, named with ``label``: the worker
    re-emits each once its state is back."""
    codec = codec_for(topics.TRACKS.record)
    now = int(time.time() * 1000)
    producer = await start_producer(settings)
    try:
        sender = PartitionedSender(producer, {topics.TRACKS.name: settings.partitions})
        for track in tracks:
            version = track | {"name": f"{track['name']} ({label})", "updated_at": now}
            await sender.send(topics.TRACKS.name, track["track_id"].encode(), codec.encode(version))
        await sender.flush()
    finally:
        await producer.stop()


def re_emitted(worker: WorkerProcess, count: int) -> dict | None:
    stats = stats_of(worker)
    return stats if stats and stats["events"].get("re-emitted", 0) >= count else None


@contextmanager
def running(settings: Settings, workdir: Path, timeout: float = 900) -> Iterator[WorkerProcess]:
    """A worker on ``workdir``'s state, given ``timeout`` to recover (a large one)."""
    worker = WorkerProcess(settings, workdir, loglevel="warn").start(timeout)
    try:
        yield worker
    finally:
        worker.stop()


def drop_offsets(state: Path) -> int:
    """Remove the changelog offsets from every table store under ``state``: the
    stores as they were before incremental recovery."""
    dropped = 0
    for path in sorted(state.glob("**/tables/*.db")):
        db = Rdict(str(path))
        if db.get(_FAUST_OFFSET_KEY) is not None:
            del db[_FAUST_OFFSET_KEY]
            dropped += 1
        db.close()
    return dropped


def restart(settings: Settings, workdir: Path, track: dict, label: str) -> dict[str, float]:
    """Start the worker on its state, send a new version of ``track``, and time it to
    that version's join."""
    started = time.time()
    asyncio.run(send_versions(settings, [track], label))
    with running(settings, workdir) as worker:
        stats = wait_for(lambda: re_emitted(worker, 1), 900, 0.1)
        if not stats:
            raise worker_failed(worker, "the restarted worker did not join the probe track")
        resumed = time.time() - started
    joined = stats["recovery"]["started_at"] - started
    return {
        "resume": resumed,
        "join": joined,
        "after": resumed - joined,
        "records": stats["recovery"]["changelog_records"],
        "recovery": stats["recovery"]["seconds"],
    }


def measure(data: Path, tracks: int, repeat: int, workdir: Path) -> dict[str, dict[str, float]]:
    runs: dict[str, list[dict[str, float]]] = {"offsets": [], "none": [], "killed": []}

    def note(way: str, figures: dict[str, float]) -> None:
        runs[way].append(figures)
        print(
            f"  {way}: resumed in {figures['resume']:.1f} s (joined its group after "
            f"{figures['join']:.1f} s), "
            f"{figures['records']:,} changelog records read in {figures['recovery']:.1f} s",
            flush=True,
        )

    with EmbeddedBroker() as broker:
        settings = stack_settings(broker, workdir, lake_sink=False)
        asyncio.run(produce(settings, str(data)))
        versions = asyncio.run(read_tracks(settings, data))
        began = time.monotonic()
        with running(settings, workdir) as worker:
            if not wait_for(lambda: settled(worker, tracks), 1800, 1):
                raise worker_failed(worker, f"the worker did not join {tracks} tracks")
        print(f"{tracks:,} tracks: first run {time.monotonic() - began:.0f} s", flush=True)
        for run in range(repeat):
            note("offsets", restart(settings, workdir, versions[0], f"offsets {run}"))
            drop_offsets(workdir / "worker")
            note("none", restart(settings, workdir, versions[0], f"none {run}"))
        with running(settings, workdir) as worker:
            asyncio.run(send_versions(settings, versions, "all"))
            if not wait_for(lambda: re_emitted(worker, tracks), 1800, 1):
                raise worker_failed(worker, f"the worker did not re-emit {tracks} tracks")
            time.sleep(6)  # Faust commits acknowledged offsets every 2.8 s
            worker.stop(signal.SIGKILL)
        note("killed", restart(settings, workdir, versions[1], "killed"))
    return {
        way: {key: statistics.median(f[key] for f in results) for key in results[0]}
        for way, results in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", default="100000", help="sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="restarts per way and size")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for tracks in (int(n) for n in args.tracks.split(",")):
            data = Path(tmp) / f"data-{tracks}"
            generate(data, tracks, seed=1)
            workdir = Path(tmp) / f"run-{tracks}"
            rows.append((tracks, measure(data, tracks, args.repeat, workdir)))
    print(f"\none worker process, 8 partitions, embedded broker, median of {args.repeat}\n")
    print(
        "| tracks | restart | to the first new record (s) | of which the group join "
        "| after the join (s) | changelog records read | recovery (s) "
        "| after the join, vs. without offsets |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    labels = {
        "none": "stores without offsets (before)",
        "offsets": "stores keep their offsets",
        "killed": "after SIGKILL",
    }
    for tracks, ways in rows:
        for way in ("none", "offsets", "killed"):
            f = ways[way]
            print(
                f"| {tracks:,} | {labels[way]} | {f['resume']:.1f} | {f['join']:.1f} "
                f"| {f['after']:.1f} | {f['records']:,.0f} | {f['recovery']:.1f} "
                f"| {f['after'] / ways['none']['after']:.2f} |"
            )


if __name__ == "__main__":
    main()
