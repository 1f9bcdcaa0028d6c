"""The pipeline lands every topic in S3 (moto's server over HTTP), each row exactly once."""

from __future__ import annotations

import asyncio
import io
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiobotocore.session import get_session

from spotify_stream import topics
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.plays import run_simulation
from spotify_stream.ingest.producer import produce
from spotify_stream.models.codec import records_in
from tests.conftest import GENERATED_TRACKS, consume_all

pytestmark = pytest.mark.slow

DATASETS = {
    "artists": topics.ARTISTS,
    "albums": topics.ALBUMS,
    "tracks_enriched": topics.ENRICHED,
    "plays": topics.PLAYS,
}


async def lake_rows(settings, dataset: str) -> list[dict]:
    bucket, _, prefix = settings.lake.removeprefix("s3://").partition("/")
    tables = []
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


def topic_records(settings, topic) -> list[dict]:
    messages = asyncio.run(consume_all(settings, topic.name))
    return [r for m in messages for name, r in records_in(m.value) if name == topic.record]


def frozen(record: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in record.items()))


def test_every_record_lands_in_s3_exactly_once(
    fresh_settings, generated, tmp_path, moto_endpoint, aws_env
):
    async def bucket():
        async with get_session().create_client("s3", endpoint_url=moto_endpoint) as s3:
            await s3.create_bucket(Bucket="e2e-lake")

    asyncio.run(bucket())
    settings = fresh_settings.model_copy(
        update={
            "join_max_wait": 3,
            "flush_seconds": 1,
            "lake": "s3://e2e-lake/lake",
            "s3_endpoint": moto_endpoint,
        }
    )
    asyncio.run(produce(settings, str(generated)))
    with WorkerProcess(settings, tmp_path) as worker:
        sent = asyncio.run(
            run_simulation(settings, rate=500, users=50, duration=2, seed=3, stop=asyncio.Event())
        )

        def all_enriched():
            records = topic_records(settings, topics.ENRICHED)
            return len({r["track_id"] for r in records}) == GENERATED_TRACKS and records

        enriched = wait_for(all_enriched, 120)
        expected = {name: topic_records(settings, topic) for name, topic in DATASETS.items()}
        expected["tracks_enriched"] = enriched
        assert len(expected["plays"]) == sent > 0

        def landed():
            rows = {name: asyncio.run(lake_rows(settings, name)) for name in DATASETS}
            return all(len(rows[n]) >= len(expected[n]) for n in DATASETS) and rows

        rows = wait_for(landed, 120)
        stats = worker.get("/pipeline/stats")
    assert rows, {n: s["rows"] for n, s in stats["lake"].items()}
    for name in DATASETS:
        # The lake holds the topic's records, as a multiset: none lost, none twice.
        assert Counter(map(frozen, rows[name])) == Counter(map(frozen, expected[name])), name
        assert stats["lake"][name]["rows"] == len(expected[name])
        assert stats["lake"][name]["failures"] == 0
