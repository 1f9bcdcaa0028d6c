"""Response times of the recommendation endpoints, next to a plain lookup on the same worker.

On a fresh embedded broker: ``--tracks`` generated tracks produced and enriched
by one worker (default settings, its lake sink on), until the cluster model
has learned them all; then simulated plays (``--users`` users, 5 s at 2,000/s)
so every user has recent plays. Then, one client on a keep-alive connection,
``--requests`` requests of each kind, in rounds that interleave the kinds:

- baseline: ``/artists/{id}``, a key lookup in the worker's broadcast store;
- ``/tracks/{id}/similar?n=10`` for random tracks;
- ``/users/{id}/recommendations?n=10`` for random users with plays (every
  worker owns all partitions here: no forwarding).

Twice: with the worker idle, and while plays stream in at ``--load`` per
second (the worker busy with them). The table shows p50, p99 and max in
milliseconds, and p99 over the baseline's p99.

    python -m bench recommend [--tracks 10000] [--requests 2000] [--users 500] [--load 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import http.client
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench import stack_settings, worker_failed
from spotify_stream import topics
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.plays import run_simulation
from spotify_stream.ingest.producer import produce
from spotify_stream.ingest.sources import ARTISTS_FILE, FEATURES_FILE

KINDS = ("baseline /artists/{id}", "/tracks/{id}/similar", "/users/{id}/recommendations")


def timed(connection: http.client.HTTPConnection, path: str) -> float:
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
    return elapsed * 1000


def measure(worker: WorkerProcess, paths: dict[str, list[str]], requests: int) -> dict:
    host, port = worker.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    times: dict[str, list[float]] = {kind: [] for kind in paths}
    rng = random.Random(1)
    try:
        for _ in range(requests):
            for kind, choices in paths.items():
                times[kind].append(timed(connection, rng.choice(choices)))
    finally:
        connection.close()
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def settle(worker: WorkerProcess, tracks: int) -> None:
    def learned() -> bool:
        stats = worker.get("/pipeline/stats")
        model = stats["cluster_model"]
        consumed = stats["topics"].get(topics.TRACKS.name, {}).get("records_in", 0)
        return consumed >= tracks and model is not None and model["rows_seen"] >= 0.95 * tracks

    if not wait_for(learned, 600):
        raise worker_failed(worker, "the model did not learn the tracks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2000, help="per kind and phase")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--load", type=int, default=2000, help="plays/s in the busy phase")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        workdir = Path(tmp)
        settings = stack_settings(broker, workdir)
        data = workdir / "data"
        generate(data, args.tracks, seed=4, anomalies=0)
        with WorkerProcess(settings, workdir, loglevel="warn") as worker:
            asyncio.run(produce(settings, str(data)))
            settle(worker, args.tracks)

            def simulate(rate: float, seconds: float, stop: asyncio.Event) -> int:
                return asyncio.run(
                    run_simulation(
                        settings,
                        rate=rate,
                        users=args.users,
                        duration=seconds,
                        seed=5,
                        stop=stop,
                    )
                )

            sent = simulate(2000, 5, asyncio.Event())
            if not wait_for(
                lambda: worker.topic_stats(topics.PLAYS.name).get("records_in", 0) >= sent, 120
            ):
                raise worker_failed(worker, "the worker did not read the plays")
            paths = sample_paths(data, sent_users(worker, args.users))
            results = {"idle": measure(worker, paths, args.requests)}
            stop = asyncio.Event()
            load = threading.Thread(target=simulate, args=(args.load, 3600, stop))
            load.start()
            try:
                time.sleep(2)  # the plays are flowing
                results[f"plays at {args.load:,}/s"] = measure(worker, paths, args.requests)
            finally:
                stop.set()
                load.join()
            model = worker.get("/pipeline/stats")["cluster_model"]

    print(
        f"\n{args.tracks:,} tracks (model version {model['version']}, k={model['k']}), "
        f"{len(paths[KINDS[2]]):,} users with plays, one worker, embedded broker; "
        f"{args.requests:,} requests of each kind per phase, one keep-alive client, n=10\n"
    )
    print("| phase | endpoint | p50 (ms) | p99 (ms) | max (ms) | p99 / baseline p99 |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for phase, times in results.items():
        base = percentile(times[KINDS[0]], 0.99)
        for kind in KINDS:
            values = times[kind]
            p99 = percentile(values, 0.99)
            print(
                f"| {phase} | {kind} | {statistics.median(values):.2f} | {p99:.2f} "
                f"| {max(values):.2f} | {p99 / base:.1f} |"
            )


def sent_users(worker: WorkerProcess, users: int) -> list[str]:
    """The simulated users the worker holds plays of."""
    out = []
    for i in range(users):
        user = f"user-{i:06d}"
        try:
            worker.get(f"/users/{user}/recommendations?n=1")
            out.append(user)
        except OSError:  # 404: this user played nothing
            continue
    return out


def sample_paths(data: Path, users: list[str]) -> dict[str, list[str]]:
    artists, tracks = ids(data / ARTISTS_FILE), ids(data / FEATURES_FILE)  # tracks with features
    return {
        KINDS[0]: [f"/artists/{a}" for a in artists],
        KINDS[1]: [f"/tracks/{t}/similar?n=10" for t in tracks],
        KINDS[2]: [f"/users/{u}/recommendations?n=10" for u in users],
    }


def ids(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return [row["id"] for row in csv.DictReader(f)]


if __name__ == "__main__":
    main()
