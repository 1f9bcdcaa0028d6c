"""``catalog sync --target glue``: the crawler's work, done from the lake's own layout.

The lake is listed once; each object's Parquet footer gives its columns. A
dataset's table has the columns of its schema mapping (``tables``) and, after
them, any column a file holds that the mapping does not (a newer writer's
added field): schema changes arrive as new optional columns, never as a
rewrite of the old ones. Each mart (``marts``) is a table too, partitioned
by ``dt``. Tables are created or updated only when they differ,
and partitions (``dt``, ``hr``) are added in batches of 100 when missing, so a
second run changes nothing. Partition projection already lets Athena find new
hours; the registered partitions serve Glue jobs, Spark and Redshift Spectrum.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from spotify_stream.errors import UsageError, UserError
from spotify_stream.settings import Settings
from spotify_stream.sink.datasets import DATASETS
from spotify_stream.sink.objects import CURATED, LakeFile
from spotify_stream.sink.storage import Storage, require_lake
from spotify_stream.warehouse.aws import aws_errors
from spotify_stream.warehouse.marts import marts
from spotify_stream.warehouse.tables import (
    TableSpec,
    glue_table_input,
    hive_type,
    mart_spec,
    table_spec,
)

log = logging.getLogger(__name__)

_PARTITIONS_PER_CALL = 100  # BatchCreatePartition's limit
_MART_FILE = re.compile(r"^dt=(?P<day>\d{4}-\d{2}-\d{2})/[^./][^/]*\.parquet$")


@dataclass
class SyncResult:
    database_created: bool = False
    tables: dict[str, str] = field(default_factory=dict)  # name -> created|updated|unchanged
    partitions_added: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return (
            self.database_created
            or any(v != "unchanged" for v in self.tables.values())
            or any(self.partitions_added.values())
        )


async def lake_layout(
    storage: Storage, progress: Callable[[int, int], None] | None = None
) -> dict[str, tuple[dict[tuple[str, str], int], list[pa.Schema]]]:
    """dataset -> ({(dt, hr): objects}, the distinct schemas of its files)."""
    keys = [k for k in await storage.keys(f"{CURATED}/") if LakeFile.parse(k)]
    layout: dict[str, tuple[dict[tuple[str, str], int], list[pa.Schema]]] = {}
    for done, key in enumerate(keys, 1):
        name = LakeFile.parse(key)
        hours, schemas = layout.setdefault(name.dataset, (defaultdict(int), []))
        hours[(name.date, name.hour)] += 1
        data = await storage.get(key)
        if data is not None:
            schema = pq.read_schema(pa.BufferReader(data))
            if not any(schema.equals(s) for s in schemas):
                schemas.append(schema)
        if progress:
            progress(done, len(keys))
    return layout


def with_added_columns(spec: TableSpec, schemas: list[pa.Schema]) -> TableSpec:
    """``spec`` with the columns its files hold beyond the mapping, appended in the
    order first seen."""
    known = {name for name, _ in spec.columns}
    extra: list[tuple[str, str]] = []
    for schema in schemas:
        for f in schema:
            if f.name not in known:
                known.add(f.name)
                extra.append((f.name, hive_type(f.type)))
    if not extra:
        return spec
    return TableSpec(spec.name, spec.location, spec.columns + tuple(extra))


async def sync_glue(
    settings: Settings, storage: Storage, progress: Callable[[int, int], None] | None = None
) -> SyncResult:
    if not settings.lake.startswith("s3://"):
        raise UsageError(
            f"catalog sync --target glue needs an s3:// lake, not {settings.lake} "
            "(--target local catalogs a local lake)"
        )
    require_lake(settings)
    layout = await lake_layout(storage, progress)
    from aiobotocore.session import get_session

    result = SyncResult()
    database = settings.glue_database
    with aws_errors("Glue"):
        async with get_session().create_client("glue", endpoint_url=settings.glue_endpoint) as glue:
            result.database_created = await _ensure_database(glue, database)
            for dataset in DATASETS:
                hours, schemas = layout.get(dataset.name, ({}, []))
                spec = with_added_columns(table_spec(dataset, settings.lake), schemas)
                result.tables[spec.name] = await _ensure_table(glue, database, spec)
                result.partitions_added[spec.name] = await _add_partitions(
                    glue, database, spec, sorted(hours)
                )
            for mart in marts().values():
                spec = mart_spec(mart, settings.lake)
                days = {
                    (m["day"],)
                    for k in await storage.keys(mart.folder())
                    if (m := _MART_FILE.match(k.removeprefix(mart.folder())))
                }
                result.tables[spec.name] = await _ensure_table(glue, database, spec)
                result.partitions_added[spec.name] = await _add_partitions(
                    glue, database, spec, sorted(days)
                )
    return result


async def _ensure_database(glue: Any, database: str) -> bool:
    try:
        await glue.get_database(Name=database)
        return False
    except glue.exceptions.EntityNotFoundException:
        await glue.create_database(
            DatabaseInput={"Name": database, "Description": "spotify-stream lake"}
        )
        log.info("created Glue database %s", database)
        return True


async def _ensure_table(glue: Any, database: str, spec: TableSpec) -> str:
    wanted = glue_table_input(spec)
    try:
        table = (await glue.get_table(DatabaseName=database, Name=spec.name))["Table"]
    except glue.exceptions.EntityNotFoundException:
        await glue.create_table(DatabaseName=database, TableInput=wanted)
        return "created"
    if _comparable(table) == _comparable(wanted):
        return "unchanged"
    await glue.update_table(DatabaseName=database, TableInput=wanted)
    return "updated"


def _comparable(table: dict[str, Any]) -> tuple:
    sd = table["StorageDescriptor"]
    return (
        [(c["Name"], c["Type"]) for c in sd["Columns"]],
        sd["Location"],
        [(k["Name"], k["Type"]) for k in table.get("PartitionKeys", ())],
        table.get("Parameters", {}),
    )


async def _add_partitions(
    glue: Any, database: str, spec: TableSpec, partitions: list[tuple[str, ...]]
) -> int:
    known = set()
    paginator = glue.get_paginator("get_partitions")
    async for page in paginator.paginate(DatabaseName=database, TableName=spec.name):
        known.update(tuple(p["Values"]) for p in page["Partitions"])
    missing = [p for p in partitions if p not in known]
    storage = glue_table_input(spec)["StorageDescriptor"]
    for start in range(0, len(missing), _PARTITIONS_PER_CALL):
        batch = missing[start : start + _PARTITIONS_PER_CALL]
        response = await glue.batch_create_partition(
            DatabaseName=database,
            TableName=spec.name,
            PartitionInputList=[
                {
                    "Values": list(values),
                    "StorageDescriptor": storage | {"Location": spec.partition_location(values)},
                }
                for values in batch
            ],
        )
        for error in response.get("Errors", ()):
            detail = error.get("ErrorDetail", {})
            if detail.get("ErrorCode") != "AlreadyExistsException":
                raise UserError(
                    f"Glue refused partition {error.get('PartitionValues')} of {spec.name}: "
                    f"{detail.get('ErrorMessage')}"
                )
    return len(missing)


async def sync_local(settings: Settings, storage: Storage, path: str) -> list[str]:
    """Views over a file lake's datasets and marts in the DuckDB file ``path``; returns
    the views."""
    import duckdb

    from spotify_stream.warehouse.query import lake_tables, parquet_view

    root = getattr(storage, "root", None)
    if root is None:
        raise UsageError(
            f"catalog sync --target local needs a file:// lake, not {settings.lake} "
            "(query --engine duckdb reads an S3 lake directly)"
        )
    require_lake(settings)
    keys = await storage.keys()
    made = []
    with duckdb.connect(path) as con:
        for name, folder, schema in lake_tables():
            levels = sum(f.name in ("dt", "hr") for f in schema)
            if any(k.startswith(folder) and k.endswith(".parquet") for k in keys):
                con.execute(parquet_view(name, root.resolve() / folder, levels, union=True))
                made.append(name)
    return made
