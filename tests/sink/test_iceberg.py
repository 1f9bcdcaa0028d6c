"""The Iceberg layout on pyiceberg's SQL catalog over SQLite and a file warehouse: a
commit holds its rows and the offsets they reach, a writer starting again skips what
the table holds, and a partition another owner wrote stops a writer before it adds a
row twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import threading
from collections import Counter

import pytest

from spotify_stream.models import codec_for
from spotify_stream.settings import Settings
from spotify_stream.sink.buffer import Flush, Limits
from spotify_stream.sink.datasets import DATASETS
from spotify_stream.sink.iceberg import IcebergWriter, OffsetConflict, catalog_of, offsets_of
from spotify_stream.sink.storage import FileStorage

PLAYS = next(d for d in DATASETS if d.name == "plays")
LIMITS = Limits(60, 1000, 1 << 20)
CODEC = codec_for("Play")
T0 = dt.datetime(2026, 3, 1, 23, 50, tzinfo=dt.UTC)  # the plays cross a day


def plays(first: int, count: int) -> list[dict]:
    return [
        {
            "user_id": f"user-{n % 7}",
            "track_id": f"track-{n % 11}",
            "played_at": T0 + dt.timedelta(minutes=n),
            "ms_played": 1000 + n,
            "skipped": n % 3 == 0,
            "session_id": f"s-{n // 4}",
        }
        for n in range(first, first + count)
    ]


def flush(partition: int, first: int, records: list[dict]) -> Flush:
    items = [CODEC.encode(r) for r in records]
    last = first + len(items) - 1
    return Flush("plays", partition, first, last, items, sum(map(len, items)), [None] * len(items))


def settings_of(tmp_path) -> Settings:
    return Settings(lake=f"file://{tmp_path}/lake", lake_format="iceberg", _env_file=None)


def writer_of(settings: Settings) -> IcebergWriter:
    return IcebergWriter(settings, FileStorage(settings.lake.removeprefix("file://")))


def table_of(settings: Settings):
    return catalog_of(settings).load_table((settings.glue_database, "plays"))


def multiset(records: list[dict]) -> Counter:
    return Counter(tuple(sorted(r.items())) for r in records)


async def test_one_commit_holds_the_rows_of_every_flush_and_the_offsets_they_reach(tmp_path):
    settings = settings_of(tmp_path)
    writer = writer_of(settings)
    for partition in (0, 1):
        assert (await writer.recover(PLAYS, partition, 0, LIMITS)).landed == 0
    a, b, c = plays(0, 40), plays(100, 25), plays(200, 10)
    written = await writer.write_all([flush(0, 0, a), flush(1, 7, b), flush(0, 40, c)], PLAYS, None)
    table = table_of(settings)
    # read back as written, independently of the writer: the Avro records decoded
    assert multiset(table.scan().to_arrow().to_pylist()) == multiset(
        [CODEC.decode(CODEC.encode(r)) for r in a + b + c]
    )
    assert written.rows == 75 and written.files >= 2  # the plays span two days
    assert offsets_of(table) == {0: 50, 1: 32}
    assert len(table.snapshots()) == 1
    assert [f.name for f in table.spec().fields] == ["played_at_day"]

    # a writer starting again starts each partition where the table stands
    again = writer_of(settings)
    assert (await again.recover(PLAYS, 0, 0, LIMITS)).landed == 50
    assert (await again.recover(PLAYS, 1, 3, LIMITS)).landed == 32
    assert (await again.recover(PLAYS, 2, 0, LIMITS)).landed == 0
    await again.write_all([flush(1, 32, plays(300, 5))], PLAYS, None)
    table.refresh()
    assert offsets_of(table) == {0: 50, 1: 37}  # the other partition's offset kept
    assert table.scan().to_arrow().num_rows == 80


async def test_a_partition_another_owner_wrote_adds_no_row_twice(tmp_path):
    settings = settings_of(tmp_path)
    old, late, new = writer_of(settings), writer_of(settings), writer_of(settings)
    for writer in (old, late, new):  # the partition moved before old or late committed
        await writer.recover(PLAYS, 0, 0, LIMITS)
    await new.write_all([flush(0, 0, plays(0, 30))], PLAYS, None)
    # what the table holds up to its end is not written again
    assert (await old.write_all([flush(0, 0, plays(0, 30))], PLAYS, None)).files == 0
    # a flush past it, begun before it, would repeat rows: refused, nothing added
    with pytest.raises(OffsetConflict, match=r"partitions \[0\] were written by another"):
        await late.write_all([flush(0, 0, plays(0, 45))], PLAYS, None)
    table = table_of(settings)
    assert multiset(table.scan().to_arrow().to_pylist()) == multiset(
        [CODEC.decode(CODEC.encode(r)) for r in plays(0, 30)]
    )
    assert offsets_of(table) == {0: 30} and len(table.snapshots()) == 1


def test_writers_of_other_partitions_committing_at_once_keep_each_others_offsets(tmp_path):
    """Two writers (as two workers would) commit 15 flushes each to one table at the
    same time: the commits that lose a race are made again on the winner's snapshot."""
    settings = settings_of(tmp_path)
    asyncio.run(writer_of(settings).recover(PLAYS, 0, 0, LIMITS))  # creates the table
    errors: list[BaseException] = []

    def run(partition: int) -> None:
        async def commits() -> None:
            writer = writer_of(settings)
            await writer.recover(PLAYS, partition, 0, LIMITS)
            for n in range(15):
                records = plays(1000 * partition + 10 * n, 10)
                await writer.write_all([flush(partition, 10 * n, records)], PLAYS, None)

        try:
            asyncio.run(commits())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    table = table_of(settings)
    assert offsets_of(table) == {0: 150, 1: 150}
    expected = [r for p in (0, 1) for n in range(15) for r in plays(1000 * p + 10 * n, 10)]
    assert multiset(table.scan().to_arrow().to_pylist()) == multiset(
        [CODEC.decode(CODEC.encode(r)) for r in expected]
    )


async def test_every_file_a_commit_writes_is_synced_to_disk(tmp_path, monkeypatch):
    """Data files, manifests and metadata (pyiceberg's own IO syncs none of them)."""
    settings = settings_of(tmp_path)
    writer = writer_of(settings)
    await writer.recover(PLAYS, 0, 0, LIMITS)
    warehouse = tmp_path / "lake" / "iceberg" / "warehouse"
    before = {p for p in warehouse.rglob("*") if p.is_file()}
    synced: list[str] = []
    fsync = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    await writer.write_all([flush(0, 0, plays(0, 30))], PLAYS, None)
    written = {str(p) for p in warehouse.rglob("*") if p.is_file()} - {str(p) for p in before}
    kinds = {p.rsplit(".", 1)[-1] for p in written}
    assert kinds == {"parquet", "avro", "json"}, written  # data, manifests, metadata
    assert written <= set(synced)
