"""Iceberg commits beside the Hive-layout writer: what a flush costs, how commits age,
and writers committing to one table at once (issue 28: choose the commit interval).

    python -m bench iceberg [--sizes 300,3000,30000] [--commits 20] [--history 500]
                            [--writers 2] [--each 30]

Needs the ``bench`` extra (pyiceberg with its SQLite catalog). Plays are the
rows, with the lake's Arrow schema (timestamps in microseconds, as Iceberg
stores them). Three parts, each checked by reading the table back:

1. **A flush**: for each size, the Hive layout's work for one flush (Parquet
   encoding as the sink does it, then the object written, fsynced and renamed
   into place by ``FileStorage``) against one Iceberg append to a table in a
   SQL catalog over SQLite with a file warehouse, partitioned by day, its
   Kafka offsets in the snapshot's summary. Medians of ``--commits``.
2. **History**: ``--history`` appends of 300 rows in a row, with pyiceberg's
   default (a new manifest per commit) and with manifests merged
   (``commit.manifest-merge.enabled``), and merged with snapshots expired
   every 50 commits; the median of the first and the last 20, and the size of
   the last metadata file (every commit writes the whole snapshot list again
   until snapshots are expired).
3. **Concurrency**: ``--writers`` processes each append ``--each`` flushes of
   1,000 rows to one table (pyiceberg reloads it and tries again when
   another's commit won): commits per second in all, those retries, and every
   flush's offsets found in exactly one snapshot.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from spotify_stream.sink.parquet import encode, schema_of
from spotify_stream.sink.storage import FileStorage

OFFSETS = "spotify-stream.offsets"  # snapshot summary property: topic:partition:first-last
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def iceberg_schema() -> pa.Schema:
    """The plays' Arrow schema with microsecond timestamps (Iceberg has no milliseconds)."""
    return pa.schema(
        [
            f.with_type(pa.timestamp("us", f.type.tz)) if pa.types.is_timestamp(f.type) else f
            for f in schema_of("Play")
        ]
    )


def plays(rows: int, first: int) -> pa.Table:
    return pa.table(
        {
            "user_id": [f"user-{(first + i) % 20_000:05d}" for i in range(rows)],
            "track_id": [f"track-{(first + i) * 7 % 5_000:04d}" for i in range(rows)],
            "played_at": [T0 + dt.timedelta(seconds=(first + i) // 4) for i in range(rows)],
            "ms_played": [180_000 + i % 1000 for i in range(rows)],
            "skipped": [i % 5 == 0 for i in range(rows)],
            "session_id": [f"s-{(first + i) // 20}" for i in range(rows)],
        },
        schema=schema_of("Play"),
    )


def catalog(root: Path):
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(
        "lake", uri=f"sqlite:///{root}/catalog.db", warehouse=f"file://{root}/warehouse"
    )


def create_table(root: Path, name: str, properties: dict[str, str] | None = None):
    from pyiceberg.transforms import DayTransform

    lake = catalog(root)
    lake.create_namespace_if_not_exists("spotify")
    table = lake.create_table(
        f"spotify.{name}", schema=iceberg_schema(), properties=properties or {}
    )
    with table.update_spec() as spec:
        spec.add_field("played_at", DayTransform(), "played_at_day")
    return table


def append(table, rows: pa.Table, offsets: str) -> None:
    table.append(rows.cast(iceberg_schema()), snapshot_properties={OFFSETS: offsets})


def offsets_in(table) -> list[str]:
    return [s.summary.additional_properties.get(OFFSETS) for s in table.snapshots()]


def check(table, rows: int, flushes: list[str]) -> None:
    table.refresh()
    found = table.scan().to_arrow().num_rows
    if found != rows or sorted(offsets_in(table)) != sorted(flushes):
        raise SystemExit(f"error: {table.name()} holds {found:,} rows, not {rows:,}, or offsets")


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def a_flush(root: Path, sizes: list[int], commits: int) -> list[tuple[int, float, float]]:
    storage = FileStorage(root / "hive")
    out = []
    for size in sizes:
        table = create_table(root, f"plays_{size}")
        hive, iceberg, flushes = [], [], []
        for n in range(commits):
            rows = plays(size, n * size)
            started = time.perf_counter()
            data = encode(rows, 100_000)
            asyncio.run(storage.put(f"plays/{size}/{n:08d}.parquet", data))
            hive.append(time.perf_counter() - started)
            flushes.append(f"spotify.plays:0:{n * size}-{(n + 1) * size - 1}")
            started = time.perf_counter()
            append(table, rows, flushes[-1])
            iceberg.append(time.perf_counter() - started)
        check(table, size * commits, flushes)
        out.append((size, median_ms(hive), median_ms(iceberg)))
    return out


def history(root: Path, commits: int, merge: bool, expire: int) -> tuple[float, float, int]:
    """Median ms of the first and last 20 of ``commits`` appends, and the last metadata
    file's size; ``merge``: manifests merged; ``expire``: every that many commits,
    snapshots older than now expired (0: never)."""
    properties = {"commit.manifest-merge.enabled": "true"} if merge else {}
    table = create_table(root, f"plays_history_{merge}_{expire}", properties)
    took, flushes = [], []
    rows = plays(300, 0)
    for n in range(commits):
        flushes.append(f"spotify.plays:0:{n * 300}-{n * 300 + 299}")
        started = time.perf_counter()
        append(table, rows, flushes[-1])
        took.append(time.perf_counter() - started)
        if expire and n % expire == expire - 1:
            now = dt.datetime.now(dt.UTC)
            table.maintenance.expire_snapshots().older_than(now).commit()
    table.refresh()
    if table.scan().to_arrow().num_rows != 300 * commits:
        raise SystemExit(f"error: {table.name()} does not hold the {300 * commits:,} rows")
    if not expire:
        check(table, 300 * commits, flushes)
    metadata = Path(table.metadata_location.removeprefix("file://")).stat().st_size
    return median_ms(took[:20]), median_ms(took[-20:]), metadata


class Retries(logging.Handler):
    """Counts pyiceberg's own retries of a commit another writer's commit beat."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += record.msg.startswith("Commit failed due to a concurrent update")


def writer(root: Path, partition: int, each: int, queue) -> None:
    retries = Retries()
    logging.getLogger("pyiceberg.table").addHandler(retries)
    logging.getLogger("pyiceberg.table").propagate = False
    table = catalog(root).load_table("spotify.plays_shared")
    for n in range(each):
        rows = plays(1000, (partition * each + n) * 1000)
        append(table, rows, f"spotify.plays:{partition}:{n * 1000}-{n * 1000 + 999}")
    queue.put(retries.count)


def concurrency(root: Path, writers: int, each: int) -> tuple[float, int]:
    from bench.iceberg import writer as target  # by its module's name: spawn pickles it

    table = create_table(root, "plays_shared")
    spawn = multiprocessing.get_context("spawn")
    queue = spawn.Queue()
    processes = [spawn.Process(target=target, args=(root, p, each, queue)) for p in range(writers)]
    started = time.perf_counter()
    for process in processes:
        process.start()
    retries = sum(queue.get(timeout=600) for _ in processes)
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    flushes = [
        f"spotify.plays:{p}:{n * 1000}-{n * 1000 + 999}"
        for p in range(writers)
        for n in range(each)
    ]
    check(table, 1000 * writers * each, flushes)
    return writers * each / seconds, retries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300,3000,30000", help="rows per flush, comma-separated")
    parser.add_argument("--commits", type=int, default=20, help="flushes timed per size")
    parser.add_argument("--history", type=int, default=500, help="appends in a row")
    parser.add_argument("--writers", type=int, default=2, help="processes committing at once")
    parser.add_argument("--each", type=int, default=30, help="flushes per writer")
    args = parser.parse_args()
    try:
        import pyiceberg  # noqa: F401
    except ImportError:
        raise SystemExit("error: pyiceberg is not installed: pip install -e '.[bench]'") from None
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        flushes = a_flush(root, sizes, args.commits)
        histories = {
            variant: history(root, args.history, *variant)
            for variant in ((False, 0), (True, 0), (True, 50))
        }
        rate, retries = concurrency(root, args.writers, args.each)
    print(
        f"\nplays, a SQL catalog over SQLite and a file warehouse, partitioned by day; "
        f"medians of {args.commits}\n"
    )
    print(
        "| rows a flush | Hive layout: encode + write (ms) | Iceberg append + commit (ms) "
        "| Iceberg / Hive | Iceberg commits/s |"
    )
    print("| ---: | ---: | ---: | ---: | ---: |")
    for size, hive, iceberg in flushes:
        print(
            f"| {size:,} | {hive:.1f} | {iceberg:.1f} | {iceberg / hive:.2f} | {1000 / iceberg:.0f} |"
        )
    print(f"\nhistory: {args.history} appends of 300 rows in a row\n")
    print("| manifests | snapshots expired | first 20 (ms) | last 20 (ms) | last metadata (KiB) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for (merge, expire), (first, last, metadata) in histories.items():
        print(
            f"| {'merged' if merge else 'one per commit'} "
            f"| {f'every {expire} commits' if expire else 'never'} "
            f"| {first:.1f} | {last:.1f} | {metadata / 1024:,.0f} |"
        )
    print()
    print(
        f"concurrency: {args.writers} writers x {args.each} flushes of 1,000 rows on one table: "
        f"{rate:.1f} commits/s in all, {retries} retried after a conflict; "
        "every flush's offsets in exactly one snapshot"
    )


if __name__ == "__main__":
    main()
