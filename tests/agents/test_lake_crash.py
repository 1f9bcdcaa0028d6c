"""A worker killed with SIGKILL at random moments: the lake still holds every row exactly once.

Records flow in while the worker is killed three times (at a random moment
within 2 s of its sink's first flush each time) and restarted on the same state directory; small
windows and row limits make the sink flush several times a second, so kills
land between flushes, in a flush, and between a write and its commit. The
seed is printed (and ``LAKE_CRASH_SEED`` replays it). In the Hive layout
(file and S3) a restart rewrites the objects begun after the committed
offset; on Iceberg tables (file warehouse, SQLite catalog) it skips what the
table's snapshot says it holds, and after the clean stop that offset is the
one the sink's group committed, partition by partition.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time

import pytest
from aiokafka import TopicPartition

from spotify_stream import topics
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.plays import run_simulation
from spotify_stream.kafka import start_offsets
from tests.agents.test_workers_e2e import produce_in_background
from tests.conftest import input_forms
from tests.lake import DATASETS, all_enriched, differences, lake_settings, topic_records

pytestmark = pytest.mark.slow


def simulate_in_background(settings, seconds: float) -> threading.Thread:
    thread = threading.Thread(
        target=lambda: asyncio.run(
            run_simulation(
                settings, rate=400, users=80, duration=seconds, seed=11, stop=asyncio.Event()
            )
        ),
        daemon=True,
    )
    thread.start()
    return thread


def lake_files(worker: WorkerProcess) -> int:
    return sum(s["files"] for s in worker.get("/pipeline/stats")["lake"].values())


@pytest.mark.parametrize("backend", ["file", "s3", "iceberg"])
def test_sigkill_at_random_moments_neither_loses_nor_doubles_a_row(
    backend, fresh_settings, generated_halves, tmp_path, moto_endpoint, aws_env
):
    seed = int(os.environ.get("LAKE_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    lake = "s3://crash-lake/lake" if backend == "s3" else f"file://{tmp_path}/lake"
    # join_max_wait: no track expires while a replacement starts up.
    settings = lake_settings(
        fresh_settings,
        lake,
        moto_endpoint,
        join_max_wait=120,
        flush_seconds=0.5,
        sink_max_rows=300,
        lake_format="iceberg" if backend == "iceberg" else "hive",
    )
    producing = produce_in_background(settings, generated_halves, rate=1500)
    assert wait_for(lambda: topic_records(settings, topics.TRACKS), 60)
    playing = simulate_in_background(settings, 45)  # it samples the tracks produced so far
    kills = []
    for _ in range(3):
        worker = WorkerProcess(settings, tmp_path).start()
        assert wait_for(lambda w=worker: lake_files(w) > 0, 60)  # its sink has partitions, writes
        kills.append(round(rng.uniform(0.0, 2.0), 2))
        time.sleep(kills[-1])
        worker.stop(signal.SIGKILL)
    print(f"seed {seed}: killed {kills} s after each sink's first flush")
    producing.join()
    playing.join()
    assert topic_records(settings, topics.PLAYS)

    with WorkerProcess(settings, tmp_path) as worker:
        assert wait_for(lambda: all_enriched(settings, worker), 180)
        settled = wait_for(lambda: not differences(settings), 120, interval=2)
        stats = worker.get("/pipeline/stats")["lake"]
    log = (tmp_path / "worker.log").read_text()
    print(
        f"{log.count('rewriting')} restarts found begun flushes to rewrite, "
        f"{log.count('the table holds offsets')} partitions found rows past the commit"
    )
    assert settled, (seed, kills, differences(settings))
    assert all(s["failures"] == 0 for s in stats.values()), stats
    assert all(input_forms(settings, topics.TRACKS).values())  # both forms were read
    if backend == "iceberg":
        assert table_offsets(settings) == committed_offsets(settings)


def table_offsets(settings) -> dict[tuple[str, int], int]:
    """(topic, partition) -> next offset, as each table's current snapshot holds them."""
    from spotify_stream.sink.iceberg import catalog_of, offsets_of

    catalog = catalog_of(settings)
    return {
        (topic.name, partition): offset
        for name, topic in DATASETS.items()
        if catalog.table_exists((settings.glue_database, name))
        for partition, offset in offsets_of(
            catalog.load_table((settings.glue_database, name))
        ).items()
    }


def committed_offsets(settings) -> dict[tuple[str, int], int]:
    """(topic, partition) -> where the sink's group resumes, for partitions that have records."""
    partitions = [
        TopicPartition(topic.name, p)
        for topic in DATASETS.values()
        for p in range(settings.partitions)
    ]
    start = asyncio.run(start_offsets(settings, f"{settings.app_id}-lake", partitions))
    return {(tp.topic, tp.partition): offset for tp, offset in start.items() if offset}
