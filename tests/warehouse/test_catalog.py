"""catalog sync: Glue on moto's server over HTTP (tables match the Parquet files, a
second run changes nothing, an added column updates the table); DuckDB views locally."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiobotocore.session import get_session

from spotify_stream.sink.datasets import DATASETS
from spotify_stream.sink.objects import ObjectName
from spotify_stream.sink.parquet import encode, schema_of, to_table
from spotify_stream.sink.storage import storage_for
from spotify_stream.warehouse.catalog import sync_glue, sync_local
from spotify_stream.warehouse.marts import marts
from spotify_stream.warehouse.tables import hive_type
from tests.lake import lake_settings
from tests.models.test_codec import SAMPLES
from tests.test_cli import run

HOUR = dt.datetime(2026, 11, 24, 9, tzinfo=dt.UTC)


def parquet(record: str, rows: list[dict], extra: dict | None = None) -> bytes:
    table = to_table(rows, schema_of(record))[0]
    for name, values in (extra or {}).items():
        table = table.append_column(name, pa.array(values, pa.int64()))
    return encode(table, 1000)


async def put(storage, dataset: str, hour: dt.datetime, first: int, data: bytes) -> None:
    await storage.put(ObjectName(dataset, 0, first, first + 9, hour).key, data)


@pytest.fixture
def settings(fresh_settings, moto_endpoint, aws_env, request):
    bucket = f"catalog-{request.node.name.replace('_', '-')[:40]}"
    return lake_settings(
        fresh_settings,
        f"s3://{bucket}/lake",
        moto_endpoint,
        glue_endpoint=moto_endpoint,
        glue_database=bucket.replace("-", "_"),
    )


async def glue_tables(settings) -> dict[str, dict]:
    async with get_session().create_client("glue", endpoint_url=settings.glue_endpoint) as glue:
        tables = {}
        for name in [d.name for d in DATASETS] + list(marts()):
            table = (await glue.get_table(DatabaseName=settings.glue_database, Name=name))["Table"]
            parts = await glue.get_partitions(DatabaseName=settings.glue_database, TableName=name)
            table["partition_values"] = sorted(tuple(p["Values"]) for p in parts["Partitions"])
            tables[name] = table
        return tables


async def test_glue_sync_creates_then_changes_nothing_then_adds_a_column(settings):
    storage = storage_for(settings)
    artist = parquet("Artist", [SAMPLES["Artist"]])
    await put(storage, "artists", HOUR, 0, artist)
    await put(storage, "artists", HOUR + dt.timedelta(hours=1), 10, artist)
    await put(
        storage, "tracks_enriched", HOUR, 0, parquet("EnrichedTrack", [SAMPLES["EnrichedTrack"]])
    )
    genres = pa.table({"genre": ["pop"], "plays": [3]})
    await storage.put("marts/daily_genre_plays/dt=2026-11-24/part-0.parquet", encode(genres, 10))

    first = await sync_glue(settings, storage)
    assert first.database_created
    assert set(first.tables.values()) == {"created"}
    assert len(first.tables) == len(DATASETS) + len(marts())
    assert first.partitions_added == {
        "artists": 2,
        "albums": 0,
        "tracks_enriched": 1,
        "plays": 0,
        "popularity": 0,
        "clusters": 0,
        "deadletters": 0,
        "daily_album_plays": 0,
        "daily_artist_plays": 0,
        "daily_cluster_sizes": 0,
        "daily_genre_plays": 1,
    }
    tables = await glue_tables(settings)
    written = pq.read_schema(pa.BufferReader(artist))
    columns = tables["artists"]["StorageDescriptor"]["Columns"]
    assert [(c["Name"], c["Type"]) for c in columns] == [
        (f.name, hive_type(f.type)) for f in written
    ]
    assert tables["artists"]["partition_values"] == [("2026-11-24", "09"), ("2026-11-24", "10")]
    assert tables["artists"]["StorageDescriptor"]["Location"] == (
        f"{settings.lake}/curated/artists/"
    )
    mart = tables["daily_genre_plays"]
    assert [k["Name"] for k in mart["PartitionKeys"]] == ["dt"]
    assert mart["partition_values"] == [("2026-11-24",)]
    assert [(c["Name"], c["Type"]) for c in mart["StorageDescriptor"]["Columns"]] == [
        ("genre", "string"),
        ("plays", "bigint"),
    ]

    second = await sync_glue(settings, storage)
    assert not second.changed and set(second.tables.values()) == {"unchanged"}
    assert await glue_tables(settings) == tables

    # a newer writer's file with one more column
    newer = parquet("Artist", [SAMPLES["Artist"]], extra={"monthly_listeners": [12]})
    await put(storage, "artists", HOUR + dt.timedelta(hours=2), 20, newer)
    third = await sync_glue(settings, storage)
    assert third.tables["artists"] == "updated" and third.partitions_added["artists"] == 1
    assert {v for k, v in third.tables.items() if k != "artists"} == {"unchanged"}
    columns = (await glue_tables(settings))["artists"]["StorageDescriptor"]["Columns"]
    assert [(c["Name"], c["Type"]) for c in columns][-1] == ("monthly_listeners", "bigint")
    assert len(columns) == len(written.names) + 1
    await storage.close()


def test_glue_target_needs_an_s3_lake(tmp_path):
    proc = run("catalog", "sync", "--target", "glue", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "error: catalog sync --target glue needs an s3:// lake, not file://./lake "
        "(--target local catalogs a local lake)"
    )


async def test_local_views_read_the_lake(fresh_settings, tmp_path):
    settings = fresh_settings.model_copy(update={"lake": f"file://{tmp_path}/lake"})
    storage = storage_for(settings)
    plays = [SAMPLES["Play"] | {"track_id": f"t{i}"} for i in range(5)]
    await put(storage, "plays", HOUR, 0, parquet("Play", plays[:3]))
    await put(storage, "plays", HOUR + dt.timedelta(hours=1), 10, parquet("Play", plays[3:]))
    made = await sync_local(settings, storage, str(tmp_path / "lake.duckdb"))
    assert made == ["plays"]
    with duckdb.connect(str(tmp_path / "lake.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT track_id, hr FROM plays ORDER BY track_id").fetchall()
    assert rows == [(f"t{i}", "09" if i < 3 else "10") for i in range(5)]
