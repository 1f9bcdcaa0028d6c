"""The lake as Apache Iceberg tables (``SPOTIFY_STREAM_LAKE_FORMAT=iceberg``).

One table per dataset, partitioned by the day of its event time (hidden
partitioning: queries filter on the column itself), in a SQL catalog over
SQLite beside a file warehouse under ``<lake>/iceberg``.

Exactly-once rests on the table, not on object names, as in Iceberg's Kafka
Connect sink: a commit appends the rows of every flush the sink took for a
dataset (all its partitions at once, so one commit per dataset and window,
not per partition) and, in the same snapshot's summary, the offset each
partition has reached (``spotify-stream.offsets``: ``{partition: next
offset}``, cumulative, so the current snapshot alone says where every
partition stands and expiring old snapshots loses nothing). A partition's
buffer starts from the offset the table holds (``recover``): what a crash
replays past it is already in the table and is dropped. Readers see a
snapshot, never half a commit.

Workers owning other partitions of a dataset commit to the same table.
pyiceberg's own retry is off (``commit.retry.num-retries`` 0): it would
commit the same offsets again over the winner's. A commit that loses the race
reads the table again, merges its partitions' offsets into the winner's and
tries again. Flushes the table already holds up to their end are not
written again (a commit reported failed that landed, another owner's after
a rebalance). A partition whose offset in the table moved otherwise since
this sink last saw it was written by another owner meanwhile (a rebalance
raced a commit): some rows would be there twice, so the write fails as a
bug and the worker stops; its successor starts from the table.

Every ``EXPIRE_EVERY`` commits, snapshots older than ``KEEP_SNAPSHOTS`` are
expired and manifests are merged on commit (``commit.manifest-merge.enabled``),
so a commit's cost does not grow with the table's history
(docs/warehouse.md). Iceberg timestamps are microseconds: the lake's
millisecond columns are cast on the way in. Every local file a commit
writes is fsynced before the catalog names it (``SyncedFileIO``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    TableAlreadyExistsError,
    ValidationException,
)
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

# pyiceberg writes an append's files with it; no public call writes them for a rewrite
from pyiceberg.io.pyarrow import PyArrowFile, PyArrowFileIO, _dataframe_to_data_files
from pyiceberg.transforms import DayTransform
from sqlalchemy.exc import OperationalError

from spotify_stream.errors import UsageError
from spotify_stream.settings import Settings
from spotify_stream.sink.buffer import Flush, Limits, PartitionBuffer
from spotify_stream.sink.datasets import Dataset
from spotify_stream.sink.parquet import schema_of
from spotify_stream.sink.storage import Storage, StorageUnavailable
from spotify_stream.sink.writer import Written, rows_of
from spotify_stream.validation import Rules

log = logging.getLogger(__name__)

#: Snapshot summary property: JSON ``{partition: next offset}`` of the dataset's topic.
OFFSETS = "spotify-stream.offsets"
#: Attempts of a commit that loses races to other workers' commits.
ATTEMPTS = 10
EXPIRE_EVERY = 100
KEEP_SNAPSHOTS = dt.timedelta(hours=1)
_PROPERTIES = {
    "commit.retry.num-retries": "0",
    "commit.manifest-merge.enabled": "true",
    "write.parquet.compression-codec": "zstd",
}


class OffsetConflict(RuntimeError):
    """A partition's offset in the table moved under this sink: another owner wrote it."""


def iceberg_schema(record: str) -> pa.Schema:
    """The Arrow schema of ``record`` with microsecond timestamps (Iceberg has no ms)."""
    return pa.schema(
        [
            f.with_type(pa.timestamp("us", f.type.tz)) if pa.types.is_timestamp(f.type) else f
            for f in schema_of(record)
        ]
    )


class _Synced(io.FileIO):
    """A local file that reaches the disk when closed, its folder's entry too."""

    def close(self) -> None:
        if not self.closed:
            os.fsync(self.fileno())
            folder = os.open(os.path.dirname(self.name), os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        super().close()


class SyncedFile(PyArrowFile):
    def create(self, overwrite: bool = False) -> Any:
        if not overwrite and self.exists():
            raise FileExistsError(f"Cannot create file, already exists: {self.location}")
        os.makedirs(os.path.dirname(self._path), exist_ok=True)
        return io.BufferedWriter(_Synced(self._path, "w"), 1 << 20)


class SyncedFileIO(PyArrowFileIO):
    """pyiceberg's file IO (its ``py-io-impl``), with every local file it writes (data,
    manifests, metadata) on disk before the catalog commit that names it: its own IO
    calls no fsync, so a power cut could lose files a committed snapshot reads."""

    def new_output(self, location: str) -> PyArrowFile:
        scheme, _, path = self.parse_location(location, self.properties)
        if scheme != "file":
            return super().new_output(location)
        return SyncedFile(location, path, self.fs_by_scheme(scheme, ""))


def catalog_of(settings: Settings) -> Any:
    """The SQL catalog over SQLite of a ``file://`` lake (``<lake>/iceberg``)."""
    if not settings.lake.startswith("file://"):
        raise UsageError(
            "SPOTIFY_STREAM_LAKE_FORMAT=iceberg needs a file:// lake for now "
            "(an s3:// lake with the Glue catalog is not built yet)"
        )
    root = Path(settings.lake.removeprefix("file://")).expanduser() / "iceberg"
    root.mkdir(parents=True, exist_ok=True)
    return SqlCatalog(
        settings.glue_database,
        uri=f"sqlite:///{root}/catalog.db",
        warehouse=f"file://{root.resolve()}/warehouse",
        **{"py-io-impl": "spotify_stream.sink.iceberg.SyncedFileIO"},
    )


def offsets_of(table: Any) -> dict[int, int]:
    """partition -> next offset, as the table's current snapshot holds them."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return {}
    raw = snapshot.summary.additional_properties.get(OFFSETS)
    return {int(p): o for p, o in json.loads(raw).items()} if raw else {}


def rewrite_day(settings: Settings, dataset: Dataset, day: dt.date) -> tuple[int, int, int]:
    """Compaction: the data files of ``dataset``'s ``day`` partition rewritten into as few
    as Iceberg's target size allows, in one snapshot that deletes exactly the files it
    read (rows appended meanwhile stay) and keeps the offsets of the one before it.
    A reader sees the old files or the new ones, never both; a crash before the commit
    leaves the table as it was (and data files no snapshot names). Returns the files
    before and after, and the rows."""
    catalog = catalog_of(settings)
    identifier = (settings.glue_database, dataset.name)
    if not catalog.table_exists(identifier):
        return 0, 0, 0
    table = catalog.load_table(identifier)
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    in_day = And(
        GreaterThanOrEqual(dataset.event_time, start.isoformat()),
        LessThan(dataset.event_time, (start + dt.timedelta(days=1)).isoformat()),
    )
    for _ in range(ATTEMPTS):
        table.refresh()
        snapshot = table.current_snapshot()
        if snapshot is None:
            return 0, 0, 0
        scan = table.scan(row_filter=in_day, snapshot_id=snapshot.snapshot_id)
        files = [task.file for task in scan.plan_files()]
        if len(files) < 2:
            return len(files), len(files), 0
        rows = scan.to_arrow()
        kept = {OFFSETS: snapshot.summary.additional_properties.get(OFFSETS, "{}")}
        try:
            with table.transaction() as transaction:
                update = transaction.update_snapshot(snapshot_properties=kept)
                with update.overwrite() as overwrite:
                    for file in files:
                        overwrite.delete_data_file(file)
                    written = list(
                        _dataframe_to_data_files(
                            transaction.table_metadata, rows, table.io, overwrite.commit_uuid
                        )
                    )
                    for file in written:
                        overwrite.append_data_file(file)
        except (CommitFailedException, ValidationException):
            continue  # a sink's commit came first (or another compaction): plan again
        return len(files), len(written), rows.num_rows
    raise StorageUnavailable(
        f"{dataset.name}: {ATTEMPTS} rewrites of {day} in a row lost to other writers", "refused"
    )


def read_table(settings: Settings, dataset: Dataset) -> pa.Table | None:
    """``dataset``'s rows as its table's current snapshot holds them, with the Hive
    layout's columns (millisecond timestamps); None before the table exists."""
    catalog = catalog_of(settings)
    identifier = (settings.glue_database, dataset.name)
    if not catalog.table_exists(identifier):
        return None
    rows = catalog.load_table(identifier).scan().to_arrow()
    return rows.cast(schema_of(dataset.topic.record))


class IcebergWriter:
    """The sink's writer for Iceberg tables: ``recover`` and ``write_all``, as ``LakeWriter``."""

    together = True  # one commit for the flushes of every partition of a dataset

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.storage = storage  # the lake's own files (ownership), closed by the sink
        self.namespace = settings.glue_database
        self._catalog = catalog_of(settings)
        self._tables: dict[str, Any] = {}
        self._seen: dict[tuple[str, int], int] = {}  # (dataset, partition) -> offset last seen
        self._commits = 0
        self._lock = threading.Lock()  # the catalog and tables, used from threads

    async def recover(
        self, dataset: Dataset, partition: int, committed: int, limits: Limits
    ) -> PartitionBuffer:
        """A buffer for ``partition`` that drops what the table already holds."""
        offsets = await self._in_thread(self._offsets, dataset)
        landed = offsets.get(partition, 0)
        self.recovered(dataset, partition, landed)
        if landed > committed:
            log.info(
                "%s[%d]: the table holds offsets up to %d (committed %d); skipping them",
                dataset.name,
                partition,
                landed,
                committed,
            )
        return PartitionBuffer(dataset.name, partition, limits, landed=landed)

    async def write_all(
        self, flushes: list[Flush], dataset: Dataset, rules: Rules | None
    ) -> Written:
        """Append the rows of ``flushes`` (in order) and their offsets in one snapshot."""
        written = Written()
        tables = []
        schema = iceberg_schema(dataset.topic.record)
        for flush in flushes:
            hours, rejected, skipped = await asyncio.to_thread(
                rows_of, flush, dataset.topic.record, dataset.event_time, rules
            )
            written.rejected += rejected
            written.skipped += skipped
            tables += [table.cast(schema) for _, table in hours]
        reached: dict[int, int] = {}
        for flush in flushes:
            reached[flush.partition] = max(reached.get(flush.partition, 0), flush.last + 1)
        rows = pa.concat_tables(tables) if tables else schema.empty_table()
        written.files = await self.commit(dataset, rows, reached)
        written.rows = rows.num_rows
        written.bytes = rows.nbytes
        return written

    def recovered(self, dataset: Dataset, partition: int, landed: int) -> None:
        """The table holds ``partition`` up to ``landed``: the offset a commit expects."""
        self._seen[dataset.name, partition] = landed

    async def commit(self, dataset: Dataset, rows: pa.Table, reached: dict[int, int]) -> int:
        """Append ``rows`` (of the table's schema) in one snapshot that says each partition
        of ``reached`` is in the table up to its offset; returns the data files added."""
        return await self._in_thread(self._commit, dataset, rows, reached)

    async def _in_thread(self, function: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(function, *args)
        except (OSError, OperationalError) as exc:  # the catalog's database or the warehouse
            message = str(exc).splitlines()[0]
            raise StorageUnavailable(f"{type(exc).__name__}: {message}", "io_error") from exc

    def _table(self, dataset: Dataset) -> Any:
        """The dataset's table, created with its partitioning in one commit (workers
        starting together: one creates it, the others load it)."""
        table = self._tables.get(dataset.name)
        if table is None:
            self._catalog.create_namespace_if_not_exists(self.namespace)
            identifier = (self.namespace, dataset.name)
            if not self._catalog.table_exists(identifier):
                schema = iceberg_schema(dataset.topic.record)
                try:
                    with (
                        self._catalog.create_table_transaction(
                            identifier, schema=schema, properties=_PROPERTIES
                        ) as creation,
                        creation.update_spec() as spec,
                    ):
                        name = f"{dataset.event_time}_day"
                        spec.add_field(dataset.event_time, DayTransform(), name)
                except TableAlreadyExistsError:
                    pass
            table = self._tables[dataset.name] = self._catalog.load_table(identifier)
        return table

    def _offsets(self, dataset: Dataset) -> dict[int, int]:
        with self._lock:
            table = self._table(dataset)
            table.refresh()
            return offsets_of(table)

    def _commit(self, dataset: Dataset, rows: pa.Table, reached: dict[int, int]) -> int:
        with self._lock:
            table = self._table(dataset)
            for attempt in range(ATTEMPTS):
                table.refresh()
                current = offsets_of(table)
                if all(current.get(p, 0) >= o for p, o in reached.items()):
                    return 0  # the table holds these rows already (it holds all before)
                moved = {
                    p: current.get(p, 0)
                    for p in reached
                    if current.get(p, 0) != self._seen.get((dataset.name, p), 0)
                }
                if moved:
                    raise OffsetConflict(
                        f"{dataset.name}: partitions {sorted(moved)} were written by another "
                        f"owner (table at {moved}); stopping so the next start reads the table"
                    )
                summary = {OFFSETS: json.dumps({str(p): o for p, o in (current | reached).items()})}
                try:
                    with table.transaction() as transaction:
                        transaction.append(rows, snapshot_properties=summary)
                except CommitFailedException:
                    log.info(
                        "%s: another worker committed first; again (%d)", dataset.name, attempt
                    )
                    continue
                for partition, offset in reached.items():
                    self._seen[dataset.name, partition] = offset
                self._commits += 1
                if self._commits % EXPIRE_EVERY == 0:
                    self._expire(table)
                snapshot = table.current_snapshot()
                return int(snapshot.summary.additional_properties.get("added-data-files", 0))
            raise StorageUnavailable(
                f"{dataset.name}: {ATTEMPTS} commits in a row lost to other writers", "refused"
            )

    def _expire(self, table: Any) -> None:
        older_than = dt.datetime.now(dt.UTC) - KEEP_SNAPSHOTS
        with contextlib.suppress(CommitFailedException):  # another's won: the next catches up
            table.maintenance.expire_snapshots().older_than(older_than).commit()
