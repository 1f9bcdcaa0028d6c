"""What the lake sink retries and what stops it: storage that fails (``StorageUnavailable``)
is retried with the flush and its offsets held; any other failure of a write is a bug,
and the sink's consumer stops (taking the worker down, to be restarted and replay)
instead of retrying it forever behind the shared gate."""

from __future__ import annotations

import asyncio
import datetime as dt

from spotify_stream import topics
from spotify_stream.agents.pipeline import Pipeline
from spotify_stream.sink.buffer import Limits
from spotify_stream.sink.consumer import LakeConsumer, LakeSink, WriteGate
from spotify_stream.sink.datasets import DATASETS
from spotify_stream.sink.storage import FileStorage
from spotify_stream.sink.writer import LakeWriter
from tests.conftest import send_records
from tests.sink.test_parquet import plays

PLAYS = next(d for d in DATASETS if d.topic == topics.PLAYS)
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


class EncodingBug(LakeWriter):
    """A writer whose Parquet encoding has a bug (storage is fine)."""

    def _encode(self, *args):
        raise TypeError("a bug in encoding")


def sink_of(settings, writer: LakeWriter) -> tuple[LakeSink, LakeConsumer]:
    sink = LakeSink(Pipeline(settings), writer, PLAYS, Limits(0.2, 1000, 1 << 20), WriteGate())
    return sink, LakeConsumer(settings, {PLAYS.name: sink})


async def read_until(lake: LakeConsumer, done, seconds: float = 30) -> None:
    await lake.start()
    try:
        for _ in range(int(seconds * 10)):
            if done():
                return
            await asyncio.sleep(0.1)
        raise AssertionError("not within the time")
    finally:
        await lake.stop()


async def test_a_bug_in_encoding_stops_the_sink_and_commits_nothing(fresh_settings, tmp_path):
    rows = [{**p, "played_at": NOW} for p in plays(20)]
    await send_records(fresh_settings, [(topics.PLAYS, p) for p in rows])
    sink, lake = sink_of(fresh_settings, EncodingBug(FileStorage(tmp_path / "lake"), 1000))
    await read_until(lake, lambda: lake.crashed)
    assert isinstance(lake.crash_reason, TypeError)
    assert sink.stats["failures"] == 0 and sink.stats["flushes"] == 0  # not an outage
    assert sink.stats["read"] == 20 and sink.pending  # held, not acknowledged
    assert not (tmp_path / "lake").exists()
    assert set(sink.safe_offsets().values()) == {0}  # so nothing was committed past 0


async def test_storage_that_fails_is_retried_with_the_offsets_held(fresh_settings, tmp_path):
    rows = [{**p, "played_at": NOW} for p in plays(20)]
    await send_records(fresh_settings, [(topics.PLAYS, p) for p in rows])
    (tmp_path / "a-file").write_text("not a directory")
    sink, lake = sink_of(
        fresh_settings, LakeWriter(FileStorage(tmp_path / "a-file" / "lake"), 1000)
    )
    await read_until(lake, lambda: sink.stats["failures"] >= 2)
    assert not lake.crashed and sink.broken is None
    assert sink.stats["failures_by_reason"] == {"io_error": sink.stats["failures"]}
    assert sink.stats["flushes"] == 0 and sink.pending
    assert all(offset == 0 for offset in sink.safe_offsets().values())  # nothing past them
