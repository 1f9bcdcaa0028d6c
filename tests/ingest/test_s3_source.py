"""Producing from an s3:// prefix: moto's server over real HTTP, aiobotocore as in production."""

from collections import deque

import boto3
import pytest

from spotify_stream import topics
from spotify_stream.ingest.producer import produce
from spotify_stream.ingest.sources import ENTITY_FILES
from tests.conftest import consume_all

pytestmark = pytest.mark.slow


async def test_produce_from_s3_equals_produce_from_directory(
    fresh_settings, generated, moto_endpoint, aws_env
):
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket="raw")
    for name in ENTITY_FILES:
        s3.upload_file(str(generated / name), "raw", f"kaggle/2023/{name}")
    settings = fresh_settings.model_copy(update={"s3_endpoint": moto_endpoint})
    from_s3 = await produce(settings, "s3://raw/kaggle/2023/")
    assert not from_s3.file_errors
    tracks = await consume_all(settings, topics.TRACKS.name)
    assert len(tracks) == 5000
    assert {n: (s.read, s.produced, dict(s.rejected)) for n, s in from_s3.files.items()} == {
        n: (s.read, s.produced, dict(s.rejected))
        for n, s in (await _reader_stats(generated)).items()
    }


async def _reader_stats(directory):
    from pathlib import Path

    from spotify_stream.ingest.catalog import CatalogReader
    from spotify_stream.ingest.sources import fetch_sources

    reader = CatalogReader(
        await fetch_sources(str(directory), Path(".")),
        max_field_chars=1 << 20,
        max_raw_bytes=1 << 16,
    )
    deque(reader.records(), maxlen=0)  # read everything; only the counts matter here
    return reader.stats


async def test_missing_bucket_is_a_clear_error(fresh_settings, moto_endpoint, aws_env):
    from spotify_stream.errors import UserError

    settings = fresh_settings.model_copy(update={"s3_endpoint": moto_endpoint})
    with pytest.raises(UserError, match="S3 bucket not found: nobucket"):
        await produce(settings, "s3://nobucket/x")
