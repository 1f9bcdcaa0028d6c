"""Reading a lake back independently of the sink: pyarrow on each object, file or S3;
an Iceberg table's current snapshot through pyiceberg's scan."""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from aiobotocore.session import get_session

from spotify_stream import topics
from spotify_stream.models.codec import records_in
from spotify_stream.settings import Settings
from tests.conftest import GENERATED_TRACKS, consume_all

DATASETS = {
    "artists": topics.ARTISTS,
    "albums": topics.ALBUMS,
    "tracks_enriched": topics.ENRICHED,
    "plays": topics.PLAYS,
    "popularity": topics.POPULARITY,
    "clusters": topics.CLUSTERS,
    "deadletters": topics.DEADLETTER,
}


def lake_settings(settings: Settings, lake: str, moto_endpoint: str, **update) -> Settings:
    """``settings`` writing to ``lake`` (``file://`` or ``s3://``, the bucket created)."""
    if lake.startswith("s3://"):

        async def bucket():
            async with get_session().create_client("s3", endpoint_url=moto_endpoint) as s3:
                await s3.create_bucket(Bucket=lake.removeprefix("s3://").split("/")[0])

        asyncio.run(bucket())
        update["s3_endpoint"] = moto_endpoint
    return settings.model_copy(update={"lake": lake, **update})


def lake_rows(settings: Settings, dataset: str) -> list[dict]:
    """Every row of ``dataset`` in the lake (no partition columns added)."""
    return asyncio.run(_lake_rows(settings, dataset))


async def _lake_rows(settings: Settings, dataset: str) -> list[dict]:
    tables = []
    if settings.lake_format == "iceberg":
        from spotify_stream.sink.iceberg import catalog_of

        catalog = catalog_of(settings)
        if catalog.table_exists((settings.glue_database, dataset)):
            table = catalog.load_table((settings.glue_database, dataset))
            tables = [table.scan().to_arrow()]
    elif settings.lake.startswith("file://"):
        root = Path(settings.lake.removeprefix("file://")) / "curated" / dataset
        tables = [pq.read_table(path) for path in sorted(root.rglob("*.parquet"))]
    else:
        bucket, _, prefix = settings.lake.removeprefix("s3://").partition("/")
        async with get_session().create_client("s3", endpoint_url=settings.s3_endpoint) as s3:
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=f"{prefix}/curated/{dataset}/"
            )
            async for page in pages:
                for obj in page.get("Contents", ()):
                    body = await s3.get_object(Bucket=bucket, Key=obj["Key"])
                    async with body["Body"] as stream:
                        tables.append(pq.read_table(io.BytesIO(await stream.read())))
    return pa.concat_tables(tables).to_pylist() if tables else []


def topic_records(settings: Settings, topic: topics.Topic) -> list[dict]:
    messages = asyncio.run(consume_all(settings, topic.name))
    return [r for m in messages for name, r in records_in(m.value) if name == topic.record]


def multiset(records: list[dict]) -> Counter:
    def frozen(record: dict) -> tuple:
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in record.items()))

    return Counter(map(frozen, records))


def differences(settings: Settings) -> dict[str, str]:
    """Per dataset whose lake is not its topic's multiset: how many rows lack or repeat."""
    found = {}
    for name, topic in DATASETS.items():
        expected, got = (
            multiset(topic_records(settings, topic)),
            multiset(lake_rows(settings, name)),
        )
        if expected != got:
            found[name] = (
                f"{(expected - got).total()} of {expected.total()} missing, "
                f"{(got - expected).total()} extra"
            )
    return found


def all_enriched(settings: Settings, worker) -> bool:
    """Every generated track enriched and, once a cluster model exists, labelled: tracks
    emitted before the first model are re-emitted labelled, which the lake must hold too."""
    stats = worker.get("/pipeline/stats")
    if stats["cluster_model"] is None or stats["unlabelled_tracks"]:
        return False
    records = topic_records(settings, topics.ENRICHED)
    return len({r["track_id"] for r in records}) == GENERATED_TRACKS
