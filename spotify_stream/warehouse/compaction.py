"""Compaction: a settled day's many small windowed files, hour by hour, into a few large ones.

The sink writes one object per flush, Kafka partition and hour; a day of a
busy dataset becomes thousands of small files, and Athena (like DuckDB) pays
per file. Compaction rewrites each ``dt=/hr=`` folder into
``compact-<digest>-<i>.parquet`` objects of up to ``compact_file_rows`` rows,
in the same folder, so partition projection, the catalog and every query see
the same table.

S3 cannot swap many objects at once, so the swap is ordered to be safe and
finished by a rerun:

1. Every compacted object records in its Parquet metadata the keys it was
   made from and the keys of all its sibling outputs.
2. All outputs are written (each PUT is atomic); only then are the sources
   deleted (one DeleteObjects call per 1,000 keys).
3. A rerun first finishes what a crash interrupted: where every output of a
   compaction exists, its leftover sources are deleted; where one is missing,
   the outputs present are deleted and the folder is compacted again.

A reader listing a folder between steps 2's PUT and DELETE (a few
milliseconds, or until the rerun after a crash) sees those rows twice; at no
point does it miss one. A folder that already holds one compacted file is
left alone, so a rerun changes nothing; late rows that arrived since are
merged with it.

Only a settled day may be compacted (``etl.check_settled``): the sink
rewrites a flush that began after its committed offset under the same name
after a crash, and a part that compaction had already removed would then
come back as duplicate rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from spotify_stream.settings import Settings
from spotify_stream.sink.datasets import DATASETS
from spotify_stream.sink.objects import CURATED, LakeFile
from spotify_stream.sink.parquet import encode
from spotify_stream.sink.storage import Storage

COMPACT_PREFIX = "compact-"
_SOURCES = b"spotify_stream.compacted_from"
_OUTPUTS = b"spotify_stream.outputs"


@dataclass
class Compacted:
    """One dataset's day: folders rewritten, objects before and after, rows kept."""

    folders: int = 0
    files_before: int = 0
    files_after: int = 0
    rows: int = 0


async def compact_iceberg_day(
    settings: Settings, day: dt.date, names: list[str]
) -> dict[str, Compacted]:
    """On Iceberg tables: each dataset's partition of ``day`` rewritten in one snapshot
    (``iceberg.rewrite_day``), atomically for readers; no swap to finish after a crash."""
    from spotify_stream.sink.iceberg import rewrite_day

    results = {}
    for dataset in DATASETS:
        if not names or dataset.name in names:
            before, after, rows = await asyncio.to_thread(rewrite_day, settings, dataset, day)
            results[dataset.name] = Compacted(int(after < before), before, after, rows)
    return results


async def compact_day(
    settings: Settings,
    storage: Storage,
    day: dt.date,
    datasets: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Compacted]:
    """Compact every hour folder of ``day`` of ``datasets`` (default: all)."""
    wanted = datasets or [d.name for d in DATASETS]
    folders: dict[str, dict[str, list[str]]] = {name: defaultdict(list) for name in wanted}
    for name in wanted:
        for key in await storage.keys(f"{CURATED}/{name}/dt={day:%Y-%m-%d}/"):
            if (file := LakeFile.parse(key)) is not None:
                folders[name][file.folder].append(key)
    total = sum(len(by_folder) for by_folder in folders.values())
    results = {name: Compacted() for name in wanted}
    done = 0
    for name, by_folder in folders.items():
        for folder, keys in sorted(by_folder.items()):
            before, after, rows = await compact_folder(settings, storage, folder, keys)
            result = results[name]
            result.files_before += before
            result.files_after += after
            result.rows += rows
            result.folders += before != after
            done += 1
            if progress:
                progress(done, total)
    return results


async def compact_folder(
    settings: Settings, storage: Storage, folder: str, keys: list[str]
) -> tuple[int, int, int]:
    """Compact one hour folder holding ``keys``: (objects before, after, rows)."""
    present = set(keys)
    tables: dict[str, pa.Table] = {}
    for key in sorted(present):
        data = await storage.get(key)
        if data is None:  # gone since the listing
            present.discard(key)
            continue
        tables[key] = pq.read_table(pa.BufferReader(data))
    before = len(present)
    # finish (or undo) what an interrupted run left
    complete = set()
    for key in sorted(present):
        meta = tables[key].schema.metadata or {}
        if key not in present or _OUTPUTS not in meta:
            continue
        outputs = json.loads(meta[_OUTPUTS])
        if all(o in present for o in outputs):
            stale = [s for s in json.loads(meta[_SOURCES]) if s in present]
            complete.add(frozenset(outputs))
        else:
            stale = [o for o in outputs if o in present]
        await storage.delete(stale)
        present.difference_update(stale)
    inputs = sorted(present)
    rows = sum(tables[k].num_rows for k in inputs)
    if len(inputs) <= 1 or frozenset(inputs) in complete:  # nothing new since
        return before, len(inputs), rows
    table = pa.concat_tables(
        [tables[k].replace_schema_metadata(None) for k in inputs], promote_options="default"
    )
    digest = hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:16]
    size = settings.compact_file_rows
    outputs = [
        f"{folder}{COMPACT_PREFIX}{digest}-{i}.parquet" for i in range(-(-len(table) // size))
    ]
    meta = {_SOURCES: json.dumps(inputs), _OUTPUTS: json.dumps(outputs)}
    for i, key in enumerate(outputs):
        chunk = table.slice(i * size, size).replace_schema_metadata(meta)
        data = await asyncio.to_thread(encode, chunk, settings.parquet_row_group_rows)
        await storage.put(key, data)
    await storage.delete([k for k in inputs if k not in outputs])
    return before, len(outputs), rows
