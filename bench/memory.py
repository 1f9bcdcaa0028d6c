"""A worker's memory over a long stream of plays, beside its bound.

On a fresh embedded broker: ``--tracks`` generated tracks produced and enriched
by one worker (default settings, its lake sink on), then ``--plays`` simulated
plays sent in rounds of ``--round``, their event times a fixed step apart
(``--step-ms``, so a million plays span days of event time and windows close
as they do in a worker running for days). After each round has been read
through both repartitions, the worker's resident memory (VmRSS) is sampled.

The table shows plays processed, RSS, and the bound the settings give
(``settings.memory_bound``): what a worker running indefinitely stays under.
The baseline is the worker's RSS once the catalog is enriched, before any play.

    python -m bench memory [--tracks 5000] [--plays 1000000] [--round 50000] [--users 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bench import stack_settings, worker_failed
from spotify_stream import topics
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.plays import PlaySimulator, load_catalog
from spotify_stream.ingest.producer import produce
from spotify_stream.kafka import PartitionedSender, ensure_topics, start_producer
from spotify_stream.models import codec_for
from spotify_stream.settings import memory_bound


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for process {pid}")


async def send_plays(
    settings, simulator: PlaySimulator, first: int, n: int, start_ms: int, step: int
):
    """Plays ``first``..``first + n - 1``, the i-th at ``start_ms + i * step``, each message
    stamped with its play's time."""
    partitions = await ensure_topics(settings, [topics.PLAYS.name])
    producer = await start_producer(settings)
    codec = codec_for(topics.PLAYS.record)
    try:
        sender = PartitionedSender(producer, partitions)
        for i in range(first, first + n):
            play = simulator.play(start_ms + i * step)
            await sender.send(topics.PLAYS.name, play["user_id"].encode(), codec.encode(play))
        await sender.flush()
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=5000)
    parser.add_argument("--plays", type=int, default=1_000_000)
    parser.add_argument("--round", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--step-ms", type=int, default=500, help="event time between plays")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        workdir = Path(tmp)
        settings = stack_settings(broker, workdir)
        generate(workdir / "data", args.tracks, seed=1, anomalies=0)
        asyncio.run(produce(settings, str(workdir / "data")))
        simulator = PlaySimulator(asyncio.run(load_catalog(settings)), args.users, seed=1)
        start_ms = int(time.time() * 1000) - args.plays * args.step_ms - 3_600_000
        bound = memory_bound(settings)
        with WorkerProcess(settings, workdir, loglevel="warn") as worker:
            if not wait_for(
                lambda: (
                    worker.get("/pipeline/stats")["pending_joins"] == 0
                    and worker.topic_stats(topics.TRACKS.name).get("records_in", 0) >= args.tracks
                ),
                300,
            ):
                raise worker_failed(worker, "the catalog was not enriched")
            baseline = rss_mb(worker.process.pid)
            print(
                f"{'plays':>10} {'seconds':>8} {'RSS MB':>8} {'RSS / baseline':>15} {'bound MB':>9}"
            )
            print(f"{0:>10,} {0:>8.0f} {baseline:>8.0f} {1:>15.2f} {bound / 2**20:>9.0f}")
            started, sent = time.monotonic(), 0
            while sent < args.plays:
                n = min(args.round, args.plays - sent)
                asyncio.run(send_plays(settings, simulator, sent, n, start_ms, args.step_ms))
                sent += n
                if not wait_for(lambda n=sent: worker.plays_through(n), 600, interval=1):
                    raise worker_failed(worker, f"the worker did not read {sent:,} plays")
                rss = rss_mb(worker.process.pid)
                print(
                    f"{sent:>10,} {time.monotonic() - started:>8.0f} {rss:>8.0f} "
                    f"{rss / baseline:>15.2f} {bound / 2**20:>9.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
