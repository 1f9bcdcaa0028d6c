import duckdb
import pytest

from spotify_stream.models import codec_for
from spotify_stream.settings import Settings
from spotify_stream.sink.buffer import Limits, PartitionBuffer
from spotify_stream.sink.storage import storage_for
from spotify_stream.sink.writer import LakeWriter
from tests.sink.test_parquet import plays


@pytest.fixture
def flush():
    buffer = PartitionBuffer("plays", 4, Limits(window=60, max_rows=10_000, max_bytes=1 << 30))
    records = plays(5000)  # 5,000 seconds from 00:00: hours 00 and 01
    # A producer that wrote microseconds: the year 56,000 has no dt= folder.
    records[17] = {**records[17], "played_at": int(records[17]["played_at"].timestamp() * 1e6)}
    for offset, record in enumerate(records, start=300):
        buffer.add(offset, codec_for("Play").encode(record), 0.0)
    return buffer.take(), records


async def test_a_flush_lands_as_one_parquet_object_per_hour_without_misfits(tmp_path, flush):
    flush, records = flush
    storage = storage_for(Settings(lake=f"file://{tmp_path}/lake", _env_file=None))
    written = await LakeWriter(storage, row_group_rows=1000).write(flush, "Play", "played_at")
    assert written.keys == [
        "curated/plays/dt=2024-05-01/hr=00/part-4-0000000300-0000005299.parquet",
        "curated/plays/dt=2024-05-01/hr=01/part-4-0000000300-0000005299.parquet",
    ]
    assert written.rejected == [
        (flush.items[17], "played_at = 1714521617000000 ms is outside the years 1-9999")
    ]
    assert written.rows == 4999
    # read back independently, straight from the files
    lake = tmp_path / "lake" / "curated" / "plays"
    rows = duckdb.sql(
        f"select track_id, ms_played, skipped from read_parquet('{lake}/*/*/*.parquet', "
        "hive_partitioning = true) order by ms_played"
    ).fetchall()
    expected = [
        (r["track_id"], r["ms_played"], r["skipped"]) for i, r in enumerate(records) if i != 17
    ]
    assert rows == expected
    hours = duckdb.sql(
        f"select hr, count(*) from read_parquet('{lake}/*/*/*.parquet', hive_partitioning = true) "
        "group by hr order by hr"
    ).fetchall()
    assert hours == [("00", 3599), ("01", 1400)]
    # a replay of the same flush rewrites the same objects, adding nothing
    again = await LakeWriter(storage, row_group_rows=1000).write(flush, "Play", "played_at")
    assert again.keys == written.keys and await storage.keys() == written.keys


async def test_the_same_flush_lands_in_s3(moto_endpoint, aws_env, flush):
    from aiobotocore.session import get_session

    flush, _ = flush
    async with get_session().create_client("s3", endpoint_url=moto_endpoint) as s3:
        await s3.create_bucket(Bucket="writer-lake")
    settings = Settings(lake="s3://writer-lake/p", s3_endpoint=moto_endpoint, _env_file=None)
    storage = storage_for(settings)
    try:
        written = await LakeWriter(storage, row_group_rows=1000).write(flush, "Play", "played_at")
        assert await storage.keys() == written.keys and len(written.keys) == 2
        assert written.bytes == sum([len(await storage.get(k)) for k in written.keys])
    finally:
        await storage.close()
