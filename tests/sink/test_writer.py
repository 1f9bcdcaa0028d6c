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
    return buffer.take("window"), records


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


async def test_records_the_agents_reject_are_skipped_not_landed(tmp_path):
    """The writer applies the agents' rules (``validation.Rules``) to an input topic: what
    they dead-letter is neither landed nor lettered again."""
    from spotify_stream.kafka import partition_for
    from spotify_stream.validation import Rules

    rules = Rules("Play", "user_id", partitions=4, event_time="played_at", max_ahead_ms=300_000)
    records = plays(40)
    home = partition_for(records[0]["user_id"].encode(), 4)
    mine = [r for r in records if partition_for(r["user_id"].encode(), 4) == home]
    theirs = next(r for r in records if partition_for(r["user_id"].encode(), 4) != home)
    stamp = int(mine[0]["played_at"].timestamp() * 1000)  # the producer's clock
    ahead = {**mine[0], "played_at": stamp + 300_001}
    sent = [
        *((codec_for("Play").encode(r), stamp) for r in mine),
        (codec_for("Play").encode({**mine[0], "user_id": ""}), stamp),  # missing id
        (codec_for("Play").encode(theirs), stamp),  # misrouted
        (codec_for("Play").encode(ahead), stamp),  # future
        (codec_for("Play").encode(ahead), None),  # no timestamp: not checked
        (codec_for("Play").encode(mine[1])[:-2], stamp),  # cut short
    ]
    buffer = PartitionBuffer("plays", home, Limits(60, max_rows=10_000, max_bytes=1 << 30))
    for offset, (item, timestamp) in enumerate(sent):
        buffer.add(offset, item, 0.0, timestamp)
    flush = buffer.take("window")
    storage = storage_for(Settings(lake=f"file://{tmp_path}/lake", _env_file=None))
    written = await LakeWriter(storage, 1000).write(flush, "Play", "played_at", rules)
    assert (written.rows, written.skipped, written.rejected) == (len(mine) + 1, 4, [])
    landed = duckdb.sql(
        f"select user_id, epoch_ms(played_at) from read_parquet('{tmp_path}/lake/curated/plays/"
        "*/*/*.parquet') order by all"
    ).fetchall()
    expected = [(r["user_id"], int(r["played_at"].timestamp() * 1000)) for r in mine]
    assert landed == sorted([*expected, (ahead["user_id"], ahead["played_at"])])
    # our own outputs have no rules: a body that does not decode is a letter
    bad = await LakeWriter(storage, 1000).write(flush, "Play", "played_at")
    assert [item for item, _ in bad.rejected] == [sent[-1][0]] and bad.skipped == 0
