"""Bad input to the lake: a play the agents reject gets one dead letter and no lake row,
and a lake the worker cannot write stops it at start with one line."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import duckdb
import pytest

from spotify_stream import topics
from spotify_stream.embedded.worker import WorkerProcess, settings_env, wait_for
from spotify_stream.models import codec_for
from tests.conftest import consume_all, send_records
from tests.lake import lake_rows, multiset
from tests.sink.test_parquet import plays
from tests.test_cli import run

pytestmark = pytest.mark.slow


def test_a_play_the_agents_reject_gets_one_letter_and_no_lake_row(fresh_settings, tmp_path):
    settings = fresh_settings.model_copy(
        update={"lake": f"file://{tmp_path}/lake", "flush_seconds": 0.5}
    )
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    good = [{**p, "played_at": now + dt.timedelta(seconds=i)} for i, p in enumerate(plays(200))]
    # A producer that wrote microseconds: a valid Avro long, the year 56,000 in ms: far
    # ahead of its message's timestamp (the agent reads event times as written).
    bad = {**good[0], "user_id": "u-bad", "played_at": int(now.timestamp() * 1_000_000)}
    ahead = {**good[1], "user_id": "u-ahead", "played_at": now + dt.timedelta(days=3650)}
    sent = [*good[:100], bad, *good[100:150], ahead, *good[150:]]
    asyncio.run(send_records(settings, [(topics.PLAYS, p) for p in sent]))
    with WorkerProcess(settings, tmp_path) as worker:
        assert wait_for(lambda: len(lake_rows(settings, "plays")) >= len(good), 60)
        assert wait_for(lambda: worker.get("/pipeline/stats")["lake"]["plays"]["skipped"] == 2, 30)

        def letters():
            messages = asyncio.run(consume_all(settings, topics.DEADLETTER.name))
            return [codec_for("DeadLetter").decode(m.value) for m in messages]

        got = wait_for(lambda: len(d := letters()) >= 2 and d, 30)
        stats = worker.get("/pipeline/stats")
    assert multiset(lake_rows(settings, "plays")) == multiset(good)
    assert sorted(
        (d["source"], d["reason"], codec_for("Play").decode(d["raw"], as_written=True)["user_id"])
        for d in got
    ) == [
        (topics.PLAYS.name, "future_event_time", "u-ahead"),
        (topics.PLAYS.name, "future_event_time", "u-bad"),
    ]
    assert stats["lake"]["plays"]["skipped"] == 2 and stats["lake"]["plays"]["rejected"] == 0
    # every object is whole Parquet: DuckDB reads the lake
    count = duckdb.sql(
        f"select count(*) from read_parquet('{tmp_path}/lake/curated/plays/*/*/*.parquet')"
    ).fetchall()
    assert count == [(len(good),)]


@pytest.mark.parametrize(
    "lake, error",
    [
        ("file://{tmp}/a-file/lake", "error: cannot write to the lake at {tmp}/a-file/lake: "),
        ("s3://no-such-bucket/lake", "error: S3 bucket not found: s3://no-such-bucket/lake"),
    ],
)
def test_a_lake_the_worker_cannot_write_is_one_line_at_start(
    lake, error, fresh_settings, tmp_path, moto_endpoint, aws_env
):
    (tmp_path / "a-file").write_text("not a directory")
    settings = fresh_settings.model_copy(
        update={"lake": lake.format(tmp=tmp_path), "s3_endpoint": moto_endpoint}
    )
    proc = run("worker", cwd=tmp_path, env=settings_env(settings))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(error.format(tmp=tmp_path)), line


def test_a_lake_or_state_of_another_broker_stops_the_worker_with_one_line(fresh_settings, tmp_path):
    """A lake and a worker state written against one broker, then a fresh broker: the
    worker says which pipeline they belong to and writes nothing."""
    from spotify_stream.embedded import EmbeddedBroker
    from spotify_stream.ownership import LAKE_FILE, STATE_FILE

    lake = tmp_path / "lake"
    first = fresh_settings.model_copy(update={"lake": f"file://{lake}", "flush_seconds": 0.5})
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    asyncio.run(send_records(first, [(topics.PLAYS, {**p, "played_at": now}) for p in plays(50)]))
    with WorkerProcess(first, tmp_path, "first") as worker:
        assert wait_for(lambda: len(lake_rows(first, "plays")) == 50, 60)
        state = worker.settings.data_dir
    owner = json.loads((lake / LAKE_FILE).read_text())
    assert json.loads((state / STATE_FILE).read_text()) == owner
    before = {p: p.read_bytes() for p in lake.rglob("*") if p.is_file()}

    with EmbeddedBroker() as other:
        second = first.model_copy(update={"broker": f"kafka://{other.bootstrap}"})
        # the old lake, a new state directory
        proc = run(
            "worker",
            cwd=tmp_path,
            env=settings_env(second.model_copy(update={"data_dir": tmp_path / "new-state"})),
        )
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith(
            f"error: the lake at file://{lake} belongs to pipeline {owner['id']}"
        )
        assert "set SPOTIFY_STREAM_LAKE to a new lake" in line
        # the old state, a new lake
        proc = run(
            "worker",
            cwd=tmp_path,
            env=settings_env(
                second.model_copy(update={"data_dir": state, "lake": f"file://{tmp_path}/new-lake"})
            ),
        )
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith(
            f"error: the worker state in {state} was built against pipeline {owner['id']}"
        )
    assert {p: p.read_bytes() for p in lake.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "new-lake" / "curated").exists()


SITECUSTOMIZE = """
from spotify_stream.sink.writer import LakeWriter


def _encode(self, *args):
    raise TypeError("a bug in encoding")


LakeWriter._encode = _encode
"""


def test_a_bug_in_encoding_stops_the_worker(fresh_settings, tmp_path, monkeypatch):
    """A worker whose Parquet encoding has a bug (injected at its start through
    sitecustomize) exits non-zero, naming it, instead of retrying it as an outage."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", str(inject))
    settings = fresh_settings.model_copy(update={"flush_seconds": 0.5})
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rows = [{**p, "played_at": now} for p in plays(50)]
    asyncio.run(send_records(settings, [(topics.PLAYS, p) for p in rows]))
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        assert wait_for(lambda: worker.process.poll() is not None, 60)
    finally:
        worker.stop()
    assert worker.process.returncode != 0
    log = worker.log.read_text()
    assert "plays: writing a flush failed; stopping the worker" in log
    assert "TypeError: a bug in encoding" in log and "retrying in" not in log
    assert not list((tmp_path / "lake").rglob("*.parquet"))
