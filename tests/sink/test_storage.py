import os

import pytest
from aiobotocore.session import get_session

from spotify_stream.errors import UserError
from spotify_stream.settings import Settings
from spotify_stream.sink.storage import FileStorage, S3Storage, storage_for

MIB = 1 << 20


async def test_file_storage_replaces_objects_whole_and_leaves_no_temporary_files(tmp_path):
    storage = storage_for(Settings(lake=f"file://{tmp_path}/lake", _env_file=None))
    assert isinstance(storage, FileStorage)
    key = "curated/plays/dt=2024-05-01/hr=12/part-3-10-19.parquet"
    await storage.put(key, b"first")
    await storage.put(key, b"second")  # a replay after a crash rewrites the same name
    assert await storage.get(key) == b"second"
    assert await storage.get("curated/none") is None
    assert await storage.keys("curated/plays/") == [key]
    assert sorted(p.name for p in (tmp_path / "lake" / key).parent.iterdir()) == [
        "part-3-10-19.parquet"
    ]


async def test_unwritable_lake_path_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    storage = storage_for(Settings(lake=f"file://{tmp_path}/file/lake", _env_file=None))
    with pytest.raises(UserError, match=r"cannot write to the lake at .*file/lake"):
        await storage.put("a/b.parquet", b"x")


def test_lake_url_must_be_file_or_s3():
    with pytest.raises(UserError, match="file://DIR or s3://bucket/prefix"):
        storage_for(Settings(lake="ftp://x", _env_file=None))


@pytest.fixture
async def bucket(moto_endpoint, aws_env):
    name = f"lake-{os.urandom(4).hex()}"
    async with get_session().create_client("s3", endpoint_url=moto_endpoint) as s3:
        await s3.create_bucket(Bucket=name)
        yield name


def s3_settings(endpoint: str, lake: str, **extra) -> Settings:
    return Settings(
        lake=lake,
        s3_endpoint=endpoint,
        s3_multipart_threshold=6 * MIB,
        s3_part_size=5 * MIB,
        _env_file=None,
        **extra,
    )


async def test_s3_storage_puts_small_objects_whole_and_large_ones_in_parts(moto_endpoint, bucket):
    storage = storage_for(s3_settings(moto_endpoint, f"s3://{bucket}/prefix", s3_sse="AES256"))
    assert isinstance(storage, S3Storage)
    small, large = os.urandom(1000), os.urandom(11 * MIB + 7)
    try:
        await storage.put("curated/a/small.parquet", small)
        await storage.put("curated/a/large.parquet", large)
        assert await storage.get("curated/a/small.parquet") == small
        assert await storage.get("curated/a/large.parquet") == large
        assert await storage.get("curated/a/none.parquet") is None
        assert await storage.keys("curated/") == [
            "curated/a/large.parquet",
            "curated/a/small.parquet",
        ]
    finally:
        await storage.close()
    async with get_session().create_client("s3", endpoint_url=moto_endpoint) as s3:
        head = await s3.head_object(Bucket=bucket, Key="prefix/curated/a/large.parquet")
        assert head["ETag"].strip('"').endswith("-3")  # three parts: 5 + 5 + 1 MiB
        assert head["ServerSideEncryption"] == "AES256"
        head = await s3.head_object(Bucket=bucket, Key="prefix/curated/a/small.parquet")
        assert "-" not in head["ETag"] and head["ServerSideEncryption"] == "AES256"
        uploads = await s3.list_multipart_uploads(Bucket=bucket)
        assert not uploads.get("Uploads")


async def test_missing_bucket_is_one_clear_error(moto_endpoint, aws_env):
    storage = storage_for(s3_settings(moto_endpoint, "s3://no-such-bucket/lake"))
    try:
        with pytest.raises(UserError, match="S3 bucket not found: s3://no-such-bucket/lake"):
            await storage.put("x.parquet", b"x")
    finally:
        await storage.close()
