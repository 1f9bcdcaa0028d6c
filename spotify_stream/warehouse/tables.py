"""Glue tables and Athena DDL of the lake's datasets, from the one schema mapping.

Each dataset's columns are those of its Parquet files: the Arrow schema of its
Avro record (``models.arrow``), in Hive types; a mart's are its SQL's output.
``dt`` and ``hr`` (marts: ``dt``) are Hive partition keys (the lake's folders),
and partition projection describes them,
so Athena finds a new hour's folder without a crawler or ``MSCK REPAIR``.
The Glue ``TableInput`` and the ``CREATE EXTERNAL TABLE`` statement are both
rendered from ``table_spec``: they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from spotify_stream.sink.datasets import DATASETS, Dataset
from spotify_stream.sink.objects import CURATED
from spotify_stream.sink.parquet import schema_of
from spotify_stream.warehouse.marts import Mart, mart_schema, marts

PARTITION_KEYS = ("dt", "hr")
#: The first day partition projection enumerates (folders of earlier event
#: times exist, for old catalog updates, but no query reaches them).
PROJECTION_SINCE = "2000-01-01"
_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


def hive_type(arrow: pa.DataType) -> str:
    """The Hive (Glue, Athena DDL) type of an Arrow type of the lake."""
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "string"
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return f"array<{hive_type(arrow.value_type)}>"
    if pa.types.is_struct(arrow):
        fields = ",".join(f"{f.name}:{hive_type(f.type)}" for f in arrow)
        return f"struct<{fields}>"
    if pa.types.is_timestamp(arrow):
        return "timestamp"
    for check, name in (
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_int32, "int"),
        (pa.types.is_int64, "bigint"),
        (pa.types.is_float32, "float"),
        (pa.types.is_float64, "double"),
        (pa.types.is_date32, "date"),
        (pa.types.is_binary, "binary"),
    ):
        if check(arrow):
            return name
    raise TypeError(f"no Hive type for Arrow {arrow}")


@dataclass(frozen=True)
class TableSpec:
    name: str
    location: str  # the dataset's folder, ending in /
    columns: tuple[tuple[str, str], ...]  # (name, Hive type), the Parquet files' order
    partition_keys: tuple[str, ...] = PARTITION_KEYS  # marts: dt only

    def partition_location(self, values: tuple[str, ...]) -> str:
        return self.location + "".join(
            f"{k}={v}/" for k, v in zip(self.partition_keys, values, strict=True)
        )

    @property
    def parameters(self) -> dict[str, str]:
        projection = {
            "projection.dt.type": "date",
            "projection.dt.format": "yyyy-MM-dd",
            "projection.dt.range": f"{PROJECTION_SINCE},NOW",
            "projection.dt.interval": "1",
            "projection.dt.interval.unit": "DAYS",
        }
        if "hr" in self.partition_keys:
            projection |= {
                "projection.hr.type": "integer",
                "projection.hr.range": "0,23",
                "projection.hr.digits": "2",
            }
        template = self.partition_location(tuple(f"${{{k}}}" for k in self.partition_keys))
        return {
            "classification": "parquet",
            "EXTERNAL": "TRUE",
            "projection.enabled": "true",
            **projection,
            "storage.location.template": template,
        }


def table_spec(dataset: Dataset, lake: str) -> TableSpec:
    """``dataset`` under the lake root ``lake`` (``s3://bucket/prefix``)."""
    schema = schema_of(dataset.topic.record)
    return TableSpec(
        name=dataset.name,
        location=f"{lake.rstrip('/')}/{CURATED}/{dataset.name}/",
        columns=tuple((f.name, hive_type(f.type)) for f in schema),
    )


def mart_spec(mart: Mart, lake: str) -> TableSpec:
    """Mart ``mart`` under the lake root ``lake``: its columns from its SQL, ``dt`` folders."""
    return TableSpec(
        name=mart.name,
        location=f"{lake.rstrip('/')}/{mart.folder()}",
        columns=tuple((f.name, hive_type(f.type)) for f in mart_schema(mart.name)),
        partition_keys=("dt",),
    )


def table_specs(lake: str) -> list[TableSpec]:
    """Every table of the lake: the datasets, then the marts."""
    return [table_spec(d, lake) for d in DATASETS] + [mart_spec(m, lake) for m in marts().values()]


def glue_table_input(spec: TableSpec) -> dict[str, Any]:
    """The ``TableInput`` of Glue's CreateTable and UpdateTable."""
    return {
        "Name": spec.name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": spec.parameters,
        "PartitionKeys": [{"Name": key, "Type": "string"} for key in spec.partition_keys],
        "StorageDescriptor": {
            "Columns": [{"Name": name, "Type": type_} for name, type_ in spec.columns],
            "Location": spec.location,
            "InputFormat": _INPUT_FORMAT,
            "OutputFormat": _OUTPUT_FORMAT,
            "SerdeInfo": {"SerializationLibrary": _SERDE, "Parameters": {}},
        },
    }


def create_table_ddl(spec: TableSpec, database: str) -> str:
    """Athena's ``CREATE EXTERNAL TABLE`` of ``spec``."""
    columns = ",\n".join(f"  `{name}` {type_}" for name, type_ in spec.columns)
    partitions = ", ".join(f"`{key}` string" for key in spec.partition_keys)
    properties = ",\n".join(f"  '{k}' = '{v}'" for k, v in spec.parameters.items())
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{spec.name}` (\n{columns}\n)\n"
        f"PARTITIONED BY ({partitions})\n"
        "STORED AS PARQUET\n"
        f"LOCATION '{spec.location}'\n"
        f"TBLPROPERTIES (\n{properties}\n)"
    )
