"""Compaction on Iceberg tables (``iceberg.rewrite_day``): a reader scanning while a day
is rewritten, or after the rewrite was killed at a random moment, sees every row once;
the sink's offsets survive it, and the sink commits on after it."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from spotify_stream.sink.iceberg import catalog_of, offsets_of, rewrite_day
from tests.sink.test_iceberg import (
    CODEC,
    LIMITS,
    PLAYS,
    T0,
    flush,
    multiset,
    plays,
    settings_of,
    table_of,
    writer_of,
)

DAY = T0.date() + dt.timedelta(days=1)  # the plays of minutes 10 to 1449 (T0 is 23:50)


def small_commits(settings, commits: int, rows: int) -> list[dict]:
    """``commits`` appends of ``rows`` plays to partition 0; returns the plays, decoded."""
    writer = writer_of(settings)

    async def run() -> None:
        await writer.recover(PLAYS, 0, 0, LIMITS)
        for n in range(commits):
            records = plays(n * rows, rows)
            await writer.write_all([flush(0, n * rows, records)], PLAYS, None)

    asyncio.run(run())
    return [CODEC.decode(CODEC.encode(r)) for r in plays(0, commits * rows)]


def day_files(table) -> int:
    return sum(1 for task in table.scan().plan_files() if task.file.partition[0] == DAY_NUMBER)


DAY_NUMBER = (DAY - dt.date(1970, 1, 1)).days


def test_a_reader_scanning_during_the_rewrite_sees_every_row_once(tmp_path):
    settings = settings_of(tmp_path)
    expected = multiset(small_commits(settings, 20, 30))
    before = table_of(settings)
    assert day_files(before) == 20 and offsets_of(before) == {0: 600}

    scans: list[tuple[int, bool]] = []  # (snapshot read, rows equal the appended ones)
    stop = threading.Event()

    def read() -> None:
        table = catalog_of(settings).load_table((settings.glue_database, "plays"))
        while not stop.is_set():
            table.refresh()
            snapshot = table.current_snapshot().snapshot_id
            rows = table.scan(snapshot_id=snapshot).to_arrow().to_pylist()
            scans.append((snapshot, multiset(rows) == expected))

    reader = threading.Thread(target=read)
    reader.start()
    while not scans:
        time.sleep(0.01)
    files_before, files_after, rows = rewrite_day(settings, PLAYS, DAY)
    done = len(scans)
    while len(scans) < done + 2:
        time.sleep(0.01)
    stop.set()
    reader.join()

    assert (files_before, files_after, rows) == (20, 1, 590)
    assert all(equal for _, equal in scans), "a scan saw a row twice or missed one"
    assert len({snapshot for snapshot, _ in scans}) == 2  # before the rewrite, and after
    after = table_of(settings)
    assert day_files(after) == 1 and offsets_of(after) == {0: 600}
    # the sink goes on from the rewrite's snapshot: its offsets were kept
    writer = writer_of(settings)
    asyncio.run(writer.recover(PLAYS, 0, 0, LIMITS))
    asyncio.run(writer.write_all([flush(0, 600, plays(600, 5))], PLAYS, None))
    assert offsets_of(table_of(settings)) == {0: 605}


REWRITE = """
import sys
from spotify_stream.settings import Settings
from spotify_stream.sink.iceberg import rewrite_day
from tests.warehouse.test_iceberg_compaction import DAY, PLAYS
settings = Settings(lake=sys.argv[1], lake_format="iceberg", _env_file=None)
print("ready", flush=True)
rewrite_day(settings, PLAYS, DAY)
print("done", flush=True)
"""


def test_a_rewrite_killed_at_random_moments_leaves_every_row_once(tmp_path):
    seed = int(os.environ.get("ICEBERG_COMPACTION_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    settings = settings_of(tmp_path)
    # a day of many small files: the rewrite takes long enough to be killed inside
    expected = multiset(small_commits(settings, 48, 30))
    kills = []
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", REWRITE, settings.lake],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        assert proc.stdout.readline().strip() == "ready"
        kills.append(round(rng.uniform(0.0, 1.0), 2))  # a rewrite takes about 0.7 s
        time.sleep(kills[-1])
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        table = table_of(settings)
        assert multiset(table.scan().to_arrow().to_pylist()) == expected, (seed, kills)
        assert offsets_of(table) == {0: 1440}
    print(
        f"seed {seed}: killed {kills} s into each rewrite; files: {day_files(table_of(settings))}"
    )
    # a rewrite run to its end afterwards: one file for the day, every row once
    rewrite_day(settings, PLAYS, DAY)
    table = table_of(settings)
    assert day_files(table) == 1
    assert multiset(table.scan().to_arrow().to_pylist()) == expected
