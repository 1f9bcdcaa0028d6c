"""Lake object names: a pure function of dataset, Kafka partition, flush range and hour.

    curated/<dataset>/dt=YYYY-MM-DD/hr=HH/part-<partition>-<first>-<last>.parquet

(Compaction later replaces a settled hour's parts with ``compact-*.parquet``
objects in the same folder: ``LakeFile`` names either kind.)

``first`` and ``last`` are the offsets of the whole flush: a flush whose
records span several hours writes one object per hour, all with the same
range. A sink restarted after a crash can therefore tell from the names alone
which flushes began after its committed offset (and may be incomplete), and
replay exactly those ranges into the same names: no duplicate rows, no gap.
Offsets are zero-padded to 10 digits (as the Kafka Connect S3 sink does) so
names sort by offset.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spotify_stream.sink.storage import Storage

CURATED = "curated"
HOUR_MS = 3_600_000
#: Event times a ``dt=`` folder can hold: the years 1 to 9999, in ms.
_FOLDERS = (
    int(dt.datetime(1, 1, 1, tzinfo=dt.UTC).timestamp()) * 1000,
    int(dt.datetime(9999, 12, 31, 23, tzinfo=dt.UTC).timestamp()) * 1000 + HOUR_MS - 1,
)
_NAME = re.compile(
    rf"^{CURATED}/(?P<dataset>[a-z_]+)/dt=(?P<date>\d{{4}}-\d{{2}}-\d{{2}})/hr=(?P<hour>\d{{2}})/"
    r"part-(?P<partition>\d+)-(?P<first>\d+)-(?P<last>\d+)\.parquet$"
)


@dataclass(frozen=True, order=True)
class ObjectName:
    dataset: str
    partition: int
    first: int
    last: int
    hour: dt.datetime  # UTC, on the hour

    @property
    def key(self) -> str:
        return (
            f"{CURATED}/{self.dataset}/dt={self.hour:%Y-%m-%d}/hr={self.hour:%H}/"
            f"part-{self.partition}-{self.first:010d}-{self.last:010d}.parquet"
        )

    @classmethod
    def parse(cls, key: str) -> ObjectName | None:
        """The name ``key`` stands for; None for anything else under the lake."""
        match = _NAME.match(key)
        if match is None:
            return None
        hour = dt.datetime.fromisoformat(f"{match['date']}T{match['hour']}:00+00:00")
        return cls(
            match["dataset"], int(match["partition"]), int(match["first"]), int(match["last"]), hour
        )


_FILE = re.compile(
    rf"^{CURATED}/(?P<dataset>[a-z_]+)/dt=(?P<date>\d{{4}}-\d{{2}}-\d{{2}})/hr=(?P<hour>\d{{2}})/"
    r"(?P<file>[^./][^/]*\.parquet)$"
)


@dataclass(frozen=True)
class LakeFile:
    """Any Parquet object of a dataset's hour folder: a sink part or a compacted file."""

    dataset: str
    date: str  # YYYY-MM-DD
    hour: str  # HH
    file: str

    @property
    def folder(self) -> str:
        return f"{CURATED}/{self.dataset}/dt={self.date}/hr={self.hour}/"

    @classmethod
    def parse(cls, key: str) -> LakeFile | None:
        match = _FILE.match(key)
        if match is None:
            return None
        return cls(match["dataset"], match["date"], match["hour"], match["file"])


def hour_of(millis: int) -> dt.datetime:
    """The UTC hour (the ``dt=``/``hr=`` folder) of an event time in ms."""
    return dt.datetime.fromtimestamp(millis // HOUR_MS * 3600, dt.UTC)


def by_hour(
    table: pa.Table, event_time: str
) -> tuple[list[tuple[dt.datetime, pa.Table]], list[tuple[int, str]]]:
    """``table``'s rows by the UTC hour of their ``event_time`` column (in row order
    within an hour), and (row, reason) for rows whose time no folder can hold."""
    millis = table.column(event_time).cast(pa.int64())
    low, high = _FOLDERS
    outside = pc.or_(pc.less(millis, low), pc.greater(millis, high))
    rejected = [
        (row, f"{event_time} = {millis[row].as_py()} ms is outside the years 1-9999")
        for row in pc.indices_nonzero(outside).to_pylist()
    ]
    if rejected:
        table, millis = table.filter(pc.invert(outside)), millis.filter(pc.invert(outside))
    hours = pc.floor(pc.divide(millis.cast(pa.float64()), float(HOUR_MS))).cast(pa.int64())
    return [
        (hour_of(hour * HOUR_MS), table.filter(pc.equal(hours, hour)))
        for hour in sorted(pc.unique(hours).to_pylist())
    ], rejected


async def inventory(storage: Storage) -> dict[str, tuple[int, int]]:
    """dataset -> (objects, rows) in the lake, rows from each object's Parquet footer."""
    counts: dict[str, tuple[int, int]] = {}
    for key in await storage.keys(f"{CURATED}/"):
        name = LakeFile.parse(key)
        data = await storage.get(key) if name is not None else None
        if name is not None and data is not None:
            objects, rows = counts.get(name.dataset, (0, 0))
            counts[name.dataset] = (
                objects + 1,
                rows + pq.read_metadata(pa.BufferReader(data)).num_rows,
            )
    return counts


async def read_dataset(
    storage: Storage, dataset: str, columns: list[str] | None = None
) -> pa.Table | None:
    """Every row of ``dataset`` (None when the lake has none): compacted files first,
    then sink parts per partition, oldest offsets first."""
    keys = [k for k in await storage.keys(f"{CURATED}/{dataset}/") if LakeFile.parse(k)]
    parts = sorted(name for key in keys if (name := ObjectName.parse(key)) is not None)
    compacted = sorted(set(keys) - {name.key for name in parts})
    tables = []
    for key in compacted + [name.key for name in parts]:
        data = await storage.get(key)
        if data is not None:
            table = pq.read_table(pa.BufferReader(data), columns=columns)
            tables.append(table.replace_schema_metadata(None))
    return pa.concat_tables(tables, promote_options="default") if tables else None


def flushes_after(
    keys: Iterable[str], dataset: str, partition: int, committed: int
) -> list[tuple[int, int]]:
    """The (first, last) offset ranges of ``dataset``'s flushes of ``partition`` that
    start at or after the ``committed`` offset: begun, perhaps not finished."""
    ranges = set()
    for key in keys:
        name = ObjectName.parse(key)
        ours = name is not None and (name.dataset, name.partition) == (dataset, partition)
        if ours and name.first >= committed:
            ranges.add((name.first, name.last))
    return sorted(ranges)
