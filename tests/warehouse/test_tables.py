"""Table definitions: Hive types from the Arrow mapping, DDL that Athena's dialect parses,
and a Glue table created on moto's server whose columns are the Parquet files' own."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from aiobotocore.session import get_session
from sqlglot import exp

from spotify_stream.sink.datasets import DATASETS
from spotify_stream.sink.parquet import encode, schema_of, to_table
from spotify_stream.warehouse.marts import marts
from spotify_stream.warehouse.tables import (
    PARTITION_KEYS,
    create_table_ddl,
    glue_table_input,
    hive_type,
    table_specs,
)
from tests.models.test_codec import SAMPLES

LAKE = "s3://lake-bucket/prefix"


@pytest.mark.parametrize(
    ("arrow", "hive"),
    [
        (pa.string(), "string"),
        (pa.int32(), "int"),
        (pa.int64(), "bigint"),
        (pa.float32(), "float"),
        (pa.float64(), "double"),
        (pa.bool_(), "boolean"),
        (pa.date32(), "date"),
        (pa.timestamp("ms", tz="UTC"), "timestamp"),
        (pa.list_(pa.string()), "array<string>"),
        (
            pa.struct([("a", pa.int64()), ("b", pa.list_(pa.float64()))]),
            "struct<a:bigint,b:array<double>>",
        ),
    ],
)
def test_hive_types(arrow, hive):
    assert hive_type(arrow) == hive


def test_an_unmapped_type_is_refused():
    with pytest.raises(TypeError, match="no Hive type"):
        hive_type(pa.dictionary(pa.int8(), pa.string()))


DATASET_SPECS = [s for s in table_specs(LAKE) if s.partition_keys == PARTITION_KEYS]
MART_SPECS = [s for s in table_specs(LAKE) if s.partition_keys == ("dt",)]


def test_every_dataset_and_mart_has_a_table():
    assert [s.name for s in DATASET_SPECS] == [d.name for d in DATASETS]
    assert sorted(s.name for s in MART_SPECS) == sorted(marts())


@pytest.mark.parametrize("spec", DATASET_SPECS, ids=lambda s: s.name)
def test_ddl_parses_as_athena_with_the_parquet_columns(spec):
    parsed = sqlglot.parse_one(create_table_ddl(spec, "spotify_stream"), read="athena")
    assert isinstance(parsed, exp.Create) and parsed.kind == "TABLE"
    table = parsed.this.this
    assert (table.db, table.name) == ("spotify_stream", spec.name)
    defined = [(c.name, c.args["kind"].sql("hive").lower()) for c in parsed.this.expressions]
    # the Parquet writer's schema, mapped independently of the spec's own list
    parquet = schema_of(next(d.topic.record for d in DATASETS if d.name == spec.name))
    assert [name for name, _ in defined] == parquet.names
    assert [type_.replace(" ", "") for _, type_ in defined] == [hive_type(f.type) for f in parquet]
    properties = {p.name: p.text("value") for p in parsed.args["properties"].expressions if p.name}
    assert properties["projection.enabled"] == "true"
    assert properties["storage.location.template"] == (
        f"{LAKE}/curated/{spec.name}/dt=${{dt}}/hr=${{hr}}/"
    )


@pytest.mark.parametrize("spec", MART_SPECS, ids=lambda s: s.name)
def test_mart_ddl_parses_as_athena_partitioned_by_day(spec):
    """(Their columns are checked against the files etl aggregate writes, in test_etl.)"""
    parsed = sqlglot.parse_one(create_table_ddl(spec, "spotify_stream"), read="athena")
    assert isinstance(parsed, exp.Create) and parsed.kind == "TABLE"
    assert [c.name for c in parsed.this.expressions] == [name for name, _ in spec.columns]
    properties = {p.name: p.text("value") for p in parsed.args["properties"].expressions if p.name}
    assert properties["storage.location.template"] == f"{LAKE}/marts/{spec.name}/dt=${{dt}}/"
    assert "projection.hr.type" not in properties
    partitioned = parsed.find(exp.PartitionedByProperty)
    assert [c.name for c in partitioned.this.expressions] == ["dt"]


async def test_glue_table_matches_a_parquet_file(moto_endpoint, aws_env):
    """moto's Glue keeps what it is given: the check is that the TableInput is accepted
    and that its columns are those a Parquet file of the sink carries."""
    spec = next(s for s in table_specs(LAKE) if s.name == "tracks_enriched")
    written = pq.read_schema(
        io.BytesIO(encode(to_table([SAMPLES["EnrichedTrack"]], schema_of("EnrichedTrack"))[0], 10))
    )
    async with get_session().create_client("glue", endpoint_url=moto_endpoint) as glue:
        await glue.create_database(DatabaseInput={"Name": "tables_test"})
        await glue.create_table(DatabaseName="tables_test", TableInput=glue_table_input(spec))
        table = (await glue.get_table(DatabaseName="tables_test", Name=spec.name))["Table"]
    columns = table["StorageDescriptor"]["Columns"]
    assert [c["Name"] for c in columns] == written.names
    assert [c["Type"] for c in columns] == [hive_type(f.type) for f in written]
    assert [k["Name"] for k in table["PartitionKeys"]] == list(PARTITION_KEYS)
    assert table["Parameters"]["projection.hr.range"] == "0,23"
