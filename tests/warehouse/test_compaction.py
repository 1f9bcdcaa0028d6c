"""etl compact: every hour folder's row multiset kept, fewer files, a rerun changes
nothing, and the state a crash leaves at any step is finished by the next run; on a
file lake and on S3 (moto's server over HTTP)."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spotify_stream.errors import UserError
from spotify_stream.sink.objects import LakeFile, ObjectName
from spotify_stream.sink.parquet import encode, schema_of, to_table
from spotify_stream.sink.storage import storage_for
from spotify_stream.warehouse.compaction import compact_day
from spotify_stream.warehouse.etl import check_settled
from tests.lake import lake_settings
from tests.models.test_codec import SAMPLES
from tests.test_cli import run

DAY = dt.date(2026, 11, 23)


def play(i: int, hour: int) -> dict:
    return SAMPLES["Play"] | {
        "user_id": f"user-{i % 7}",
        "track_id": f"t{i % 13}",  # repeated rows: a multiset, not a set
        "played_at": dt.datetime(2026, 11, 23, hour, i % 60, tzinfo=dt.UTC),
        "ms_played": 1000,
    }


async def write_parts(storage, hours=(9, 10, 23), partitions=3, flushes=4) -> None:
    """Sink-named parts: per hour, partition and flush, 1 to 6 plays; one file of the next
    day, which compaction of DAY must not touch."""
    rng = random.Random(5)
    offset = 0
    for hour in hours:
        for partition in range(partitions):
            for _ in range(flushes):
                rows = [play(offset + j, hour) for j in range(rng.randint(1, 6))]
                when = dt.datetime(2026, 11, 23, hour, tzinfo=dt.UTC)
                name = ObjectName("plays", partition, offset, offset + len(rows) - 1, when)
                await storage.put(name.key, encode(to_table(rows, schema_of("Play"))[0], 100))
                offset += len(rows)
    other = ObjectName("plays", 0, 10_000, 10_000, dt.datetime(2026, 11, 24, 0, tzinfo=dt.UTC))
    await storage.put(other.key, encode(to_table([play(0, 0)], schema_of("Play"))[0], 100))


async def folders(storage) -> dict[str, tuple[int, Counter]]:
    """hour folder -> (objects, row multiset)."""
    found: dict[str, tuple[int, Counter]] = {}
    for key in await storage.keys("curated/"):
        file = LakeFile.parse(key)
        table = pq.read_table(pa.BufferReader(await storage.get(key)))
        count, rows = found.get(file.folder, (0, Counter()))
        rows.update(tuple(sorted(r.items())) for r in table.to_pylist())
        found[file.folder] = (count + 1, rows)
    return found


@pytest.fixture(params=["file", "s3"])
def settings(request, fresh_settings, tmp_path):
    if request.param == "file":
        return fresh_settings.model_copy(
            update={"lake": f"file://{tmp_path}/lake", "compact_file_rows": 20}
        )
    moto_endpoint = request.getfixturevalue("moto_endpoint")
    request.getfixturevalue("aws_env")
    bucket = f"compaction-{abs(hash(request.node.name)) % 10**8}"
    settings = lake_settings(fresh_settings, f"s3://{bucket}/lake", moto_endpoint)
    return settings.model_copy(update={"compact_file_rows": 20})


async def test_compaction_keeps_every_row_in_fewer_files(settings):
    storage = storage_for(settings)
    await write_parts(storage)
    before = await folders(storage)

    result = (await compact_day(settings, storage, DAY))["plays"]
    after = await folders(storage)
    assert after.keys() == before.keys()
    for folder, (count, rows) in before.items():
        assert after[folder][1] == rows, folder  # the same multiset of rows
        if folder.startswith("curated/plays/dt=2026-11-23/"):
            # up to 20 rows a file: 12 parts of 1-6 rows become 1 to 4 files
            assert after[folder][0] == -(-sum(rows.values()) // 20) < count
        else:
            assert after[folder][0] == count  # another day: untouched
    assert result.folders == 3 and result.files_before == 36
    assert result.files_after == sum(n for f, (n, _) in after.items() if "2026-11-23" in f)
    assert result.rows == sum(sum(r.values()) for f, (_, r) in before.items() if "11-23" in f)

    keys = await storage.keys("curated/")
    again = (await compact_day(settings, storage, DAY))["plays"]
    assert again.folders == 0 and await storage.keys("curated/") == keys
    await storage.close()


async def test_late_rows_are_merged_with_the_compacted_file(settings):
    storage = storage_for(settings)
    await write_parts(storage, hours=(9,), partitions=1, flushes=2)
    await compact_day(settings, storage, DAY)
    late = ObjectName("plays", 0, 500, 500, dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC))
    await storage.put(late.key, encode(to_table([play(500, 9)], schema_of("Play"))[0], 100))
    before = await folders(storage)
    await compact_day(settings, storage, DAY)
    after = await folders(storage)
    folder = "curated/plays/dt=2026-11-23/hr=09/"
    assert after[folder][1] == before[folder][1] and after[folder][0] == 1
    await storage.close()


async def test_a_crash_at_any_step_is_finished_by_the_next_run(settings):
    storage = storage_for(settings)
    await write_parts(storage, hours=(9,), partitions=2, flushes=4)
    folder = "curated/plays/dt=2026-11-23/hr=09/"
    rows = (await folders(storage))[folder][1]
    sources = {k: await storage.get(k) for k in await storage.keys(folder)}

    await compact_day(settings, storage, DAY)
    outputs = await storage.keys(folder)
    assert len(outputs) >= 2 and not set(outputs) & set(sources)
    meta = pq.read_schema(pa.BufferReader(await storage.get(outputs[0]))).metadata
    assert json.loads(meta[b"spotify_stream.compacted_from"]) == sorted(sources)
    assert json.loads(meta[b"spotify_stream.outputs"]) == outputs

    # 1. crashed after every output, before the deletion: the sources are deleted
    for key, data in sources.items():
        await storage.put(key, data)
    await compact_day(settings, storage, DAY)
    assert await storage.keys(folder) == outputs
    assert (await folders(storage))[folder][1] == rows

    # 2. crashed between two outputs: the one written is dropped, the folder redone
    await storage.delete(outputs[1:])
    for key, data in sources.items():
        await storage.put(key, data)
    await compact_day(settings, storage, DAY)
    assert await storage.keys(folder) == outputs
    assert (await folders(storage))[folder][1] == rows
    await storage.close()


def test_an_unsettled_day_is_refused(fresh_settings, tmp_path):
    now = dt.datetime(2026, 11, 24, 0, 30, tzinfo=dt.UTC)
    with pytest.raises(UserError, match="2026-11-23 is not settled before 2026-11-24 01:00 UTC"):
        check_settled(DAY, fresh_settings, now)
    check_settled(DAY, fresh_settings, now + dt.timedelta(minutes=30))

    today = dt.datetime.now(dt.UTC).date()
    for job in ("compact", "aggregate"):
        proc = run("etl", job, "--date", f"{today}", cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith(f"error: {today} is not settled before")
