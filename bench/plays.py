"""Plays through one worker next to the raw limit and the peer, in one run.

On a fresh embedded broker, per run:

1. a generated catalog of ``--tracks`` produced and enriched by a worker
   (lake sink on, 1 s window), which then stops;
2. ``--plays`` simulated plays sent one per message, keyed by user, stamped
   with their event time (a fixed step apart, so windows close as they go);
3. raw limit: an aiokafka consumer reads the plays topic and decodes every
   record with fastavro, nothing else;
4. the worker again (``--workers 2``: with a second one, which starts with no
   state, in its group), timed from the first play read to every play through both
   repartitions (``plays-by-track``, ``popularity-contributions``), the windows
   they closed out and landed, and every play in the lake: the popularity
   windows (track, artist, album, genres), each user's recent plays, the lake;
5. the peer (``bench/peer.py plays``, Quix Streams): plays repartitioned by
   track, counted in hourly tumbling windows, and into its Parquet sink; timed
   from its first play read to its sink's write of the last.

The table shows medians of ``--repeat`` runs, plays/s, the ratios, the worker's
CPU over the window, and each process's peak RSS (with two workers, the first's).

    python -m bench plays [--tracks 5000] [--plays 200000] [--users 20000] [--repeat 3]
                          [--workers 1|2] [--no-peer]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench import CpuWindow, peak_rss_mb, stack_settings, worker_failed
from bench.memory import send_plays
from bench.pipeline import peer, raw_limit
from spotify_stream import topics
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.plays import PlaySimulator, load_catalog
from spotify_stream.ingest.producer import produce

STEP_MS = 500
REPARTITIONS = (
    topics.PLAYS_BY_TRACK,
    topics.CONTRIBUTIONS,
)  # event time between plays: 200,000 plays span 28 hours


def drained(workers: list[WorkerProcess], plays: int, app_id: str) -> bool:
    """Every play read, through both repartitions (every message sent to them read, by
    any worker), the windows it closed landed, and every play in the lake."""
    stats = [worker.get("/pipeline/stats") for worker in workers]

    def total(topic: str, field: str) -> int:
        return sum(s["topics"].get(topic, {}).get(field, 0) for s in stats)

    if total(topics.PLAYS.name, "records_in") < plays:
        return False
    for name in REPARTITIONS:
        internal = topics.internal(app_id, name)
        if total(internal, "messages_in") < max(total(internal, "messages_out"), 1):
            return False
    landed = sum(s["lake"]["popularity"]["read"] for s in stats)
    plays_landed = sum(s["lake"]["plays"]["rows"] for s in stats)
    return landed >= total(topics.POPULARITY.name, "messages_out") and plays_landed >= plays


def drain(workers: list[WorkerProcess], plays: int, app_id: str) -> float:
    """Seconds from the first play read (by any of ``workers``) to all of them drained."""
    if not wait_for(lambda: drained(workers, plays, app_id), 900, 0.2):
        raise worker_failed(workers[0], f"the workers did not take {plays:,} plays through")
    done = time.time()
    firsts = [w.topic_stats(topics.PLAYS.name).get("first_at") for w in workers]
    return done - min(f for f in firsts if f)


def run(
    data: Path, workdir: Path, tracks: int, plays: int, users: int, with_peer: bool, workers: int
) -> dict:
    with EmbeddedBroker() as broker:
        settings = stack_settings(broker, workdir, flush_seconds=1)
        asyncio.run(produce(settings, str(data)))
        with WorkerProcess(settings, workdir, loglevel="warn") as worker:
            if not wait_for(
                lambda: (
                    worker.get("/pipeline/stats")["pending_joins"] == 0
                    and worker.topic_stats(topics.TRACKS.name).get("records_in", 0) >= tracks
                ),
                300,
            ):
                raise worker_failed(worker, "the catalog was not enriched")
        simulator = PlaySimulator(asyncio.run(load_catalog(settings)), users, seed=1)
        start_ms = int(time.time() * 1000) - plays * STEP_MS - 3_600_000
        asyncio.run(send_plays(settings, simulator, 0, plays, start_ms, STEP_MS))
        figures = {"raw": asyncio.run(raw_limit(settings, plays, topics.PLAYS.name))}
        names = ["worker", "second"][:workers]  # the second starts with no state
        with ExitStack() as stack:
            group = [
                stack.enter_context(WorkerProcess(settings, workdir, name, loglevel="warn"))
                for name in names
            ]
            cpu = CpuWindow(group[0].process.pid, broker.pid)
            if not wait_for(
                lambda: any(w.topic_stats(topics.PLAYS.name).get("records_in", 0) for w in group),
                300,
                0.05,
            ):
                raise worker_failed(group[0], "the workers read no play")
            cpu.start()
            figures["seconds"] = drain(group, plays, settings.app_id)
            figures["worker"] = plays / figures["seconds"]
            figures |= cpu.stop()
            figures["worker_rss_mb"] = peak_rss_mb(group[0].process.pid)
            internal = [topics.internal(settings.app_id, n) for n in REPARTITIONS]
            figures["internal_messages"] = sum(
                w.topic_stats(topic).get("messages_out", 0) for w in group for topic in internal
            )
        if with_peer:
            timed = peer(settings, workdir, "plays", plays, lake=True)
            figures["peer"] = plays / (timed["landed_at"] - timed["first_at"])
            figures["peer_rss_mb"] = timed["rss_mb"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=5000)
    parser.add_argument("--plays", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true", help="leave out Quix Streams")
    parser.add_argument(
        "--workers", type=int, choices=(1, 2), default=1, help="workers in the timed group"
    )
    args = parser.parse_args()
    with_peer = not args.no_peer and importlib.util.find_spec("quixstreams") is not None
    if not with_peer and not args.no_peer:
        print("the peer (Quix Streams) is not installed: pip install -e '.[bench]'")
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate(data, args.tracks, seed=1)
        for i in range(args.repeat):
            workdir = Path(tmp) / f"run_{i}"  # Quix Streams' file sink: no dashes
            workdir.mkdir()
            figures = run(
                data, workdir, args.tracks, args.plays, args.users, with_peer, args.workers
            )
            for key, value in figures.items():
                runs.setdefault(key, []).append(value)
            print(
                f"run {i + 1}/{args.repeat}: "
                + ", ".join(f"{k} {v:,.2f}" for k, v in figures.items()),
                flush=True,
            )
    m = {k: statistics.median(v) for k, v in runs.items()}
    print(
        f"\n{args.plays:,} plays of {args.users:,} users over {args.tracks:,} tracks, one per "
        f"message, 8 partitions, {args.workers} worker process(es), embedded broker, "
        f"median of {args.repeat}: every play drained in {m['seconds']:.1f} s; "
        f"{m['internal_messages']:,.0f} messages through the two repartitions\n"
    )
    print(
        "| raw consume + decode (plays/s) | worker: windows, user state, lake (plays/s) "
        "| worker / raw | peer: tumbling count per track, lake (plays/s) | worker / peer "
        f"| cores in use (of {os.cpu_count()}): worker / its main thread / broker "
        "| peak RSS: worker / peer (MB) |"
    )
    print("| ---: |" + " ---: |" * 6)
    peer_rate = m.get("peer")
    peer_cells = (
        ("–", "–") if peer_rate is None else (f"{peer_rate:,.0f}", f"{m['worker'] / peer_rate:.2f}")
    )
    print(
        f"| {m['raw']:,.0f} | {m['worker']:,.0f} | {m['worker'] / m['raw']:.3f} "
        f"| {peer_cells[0]} | {peer_cells[1]} "
        f"| {m['worker_cores']:.2f} / {m['main_cores']:.2f} / {m['broker_cores']:.2f} "
        f"| {m['worker_rss_mb']:,.0f} / {m.get('peer_rss_mb', 0):,.0f} |"
    )


if __name__ == "__main__":
    main()
