"""``etl to-iceberg``: a Hive-layout lake's datasets copied into Iceberg tables.

Each dataset becomes one commit: the rows of its objects, and, in the
snapshot, the offset of each partition the sink's group has committed
(``<app_id>-lake``), so a sink started with ``SPOTIFY_STREAM_LAKE_FORMAT=iceberg``
goes on from there, neither reading twice nor skipping. Objects of flushes
that began at or after that offset are left out: the Hive sink had not
committed them (a crash may have cut them short), and the Iceberg sink reads
them again. Run it with the workers stopped; the ``curated/`` objects stay
where they are, for the user to remove once the tables answer.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from aiokafka import TopicPartition

from spotify_stream.errors import UsageError
from spotify_stream.kafka import ensure_topics, start_offsets
from spotify_stream.settings import Settings
from spotify_stream.sink.datasets import DATASETS, Dataset
from spotify_stream.sink.iceberg import IcebergWriter, catalog_of, iceberg_schema
from spotify_stream.sink.objects import CURATED, LakeFile, ObjectName
from spotify_stream.sink.storage import Storage


@dataclass
class Copied:
    dataset: str
    objects: int
    rows: int
    left_out: int  # objects of flushes past the committed offset: the sink writes them again
    offsets: dict[int, int]


async def to_iceberg(settings: Settings, storage: Storage) -> list[Copied]:
    """Copy every dataset of the Hive layout at ``settings.lake`` into its Iceberg table
    (refused for a dataset whose table holds rows already)."""
    iceberg = settings.model_copy(update={"lake_format": "iceberg"})
    catalog = catalog_of(iceberg)
    for dataset in DATASETS:
        identifier = (settings.glue_database, dataset.name)
        if catalog.table_exists(identifier) and catalog.load_table(identifier).current_snapshot():
            raise UsageError(
                f"the Iceberg table {'.'.join(identifier)} holds rows already; "
                "to-iceberg copies a lake once"
            )
    committed = await _committed(settings)
    writer = IcebergWriter(iceberg, storage)
    return [await _copy(writer, storage, dataset, committed) for dataset in DATASETS]


async def _committed(settings: Settings) -> dict[tuple[str, int], int]:
    """(topic, partition) -> where the sink's group resumes, for every dataset topic."""
    counts = await ensure_topics(settings, [d.topic.name for d in DATASETS])
    partitions = [
        TopicPartition(d.topic.name, p) for d in DATASETS for p in range(counts[d.topic.name])
    ]
    start = await start_offsets(settings, f"{settings.app_id}-lake", partitions)
    return {(tp.topic, tp.partition): offset for tp, offset in start.items()}


async def _copy(
    writer: IcebergWriter,
    storage: Storage,
    dataset: Dataset,
    committed: dict[tuple[str, int], int],
) -> Copied:
    offsets = {p: o for (topic, p), o in committed.items() if topic == dataset.topic.name and o}
    tables, left_out = [], 0
    schema = iceberg_schema(dataset.topic.record)
    for key in sorted(await storage.keys(f"{CURATED}/{dataset.name}/")):
        if LakeFile.parse(key) is None:
            continue
        name = ObjectName.parse(key)  # None: a compacted file, which holds settled hours
        if name is not None and name.first >= offsets.get(name.partition, 0):
            left_out += 1
            continue
        data = await storage.get(key)
        if data is not None:
            table = pq.read_table(io.BytesIO(data))
            table = table.drop_columns([c for c in ("dt", "hr") if c in table.column_names])
            tables.append(table.select(schema.names).cast(schema))
    for partition in offsets:
        writer.recovered(dataset, partition, 0)
    rows = pa.concat_tables(tables) if tables else schema.empty_table()
    if offsets or rows.num_rows:
        await writer.commit(dataset, rows, offsets)
    return Copied(dataset.name, len(tables), rows.num_rows, left_out, offsets)
