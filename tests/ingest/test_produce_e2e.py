"""Generated data through the real embedded broker, checked against DuckDB on the CSVs."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import os
import subprocess
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from spotify_stream import topics
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.generator import ANOMALY_MANIFEST, generate
from spotify_stream.ingest.producer import produce
from spotify_stream.ingest.sources import ALBUMS_FILE, ARTISTS_FILE, FEATURES_FILE, TRACKS_FILE
from spotify_stream.kafka import partition_for
from spotify_stream.models import codec_for
from tests.conftest import GENERATED_TRACKS, cli_command, consume_all
from tests.reference import reference

pytestmark = pytest.mark.slow


def manifest(data: Path) -> Counter:
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT file, CAST(\"row\" AS BIGINT), reason FROM read_csv('{data / ANOMALY_MANIFEST}', all_varchar = true)"
    ).fetchall()
    return Counter(rows)


async def test_generated_catalog_arrives_exactly_once_with_equal_values(fresh_settings, generated):
    # Small batches: every partition gets many, so batch rotation is exercised too.
    fresh_settings = fresh_settings.model_copy(update={"producer_max_batch_bytes": 16_384})
    result = await produce(fresh_settings, str(generated))
    assert not result.file_errors and not result.interrupted

    expected = reference(generated)
    assert len(expected[topics.TRACKS.name]) == GENERATED_TRACKS
    mtimes = {
        f: int((generated / f).stat().st_mtime * 1000)
        for f in (ARTISTS_FILE, ALBUMS_FILE, TRACKS_FILE, FEATURES_FILE)
    }

    for topic in (topics.ARTISTS, topics.ALBUMS, topics.TRACKS, topics.AUDIO_FEATURES):
        messages = await consume_all(fresh_settings, topic.name)
        codec = codec_for(topic.record)
        decoded = {}
        for message in messages:
            record = codec.decode(message.value)
            key = record[topic.key]
            assert message.key == key.encode()
            assert message.partition == partition_for(message.key, fresh_settings.partitions)
            assert key not in decoded, f"{topic.name}: {key} arrived twice"
            updated_at = record.pop("updated_at")
            assert isinstance(updated_at, dt.datetime)
            decoded[key] = record
        assert decoded == expected[topic.name], topic.name
        assert result.messages[topic.name] == len(messages)

    # Source timestamps: each record carries its file's modification time.
    artist = codec_for("Artist").decode(
        (await consume_all(fresh_settings, topics.ARTISTS.name))[0].value
    )
    assert int(artist["updated_at"].timestamp() * 1000) == mtimes[ARTISTS_FILE]

    dead = await consume_all(fresh_settings, topics.DEADLETTER.name)
    letters = [codec_for("DeadLetter").decode(m.value) for m in dead]
    assert Counter((d["source"], d["row"], d["reason"]) for d in letters) == manifest(generated)
    assert all(d["raw"] and d["raw_size"] == len(d["raw"]) and d["line"] >= 2 for d in letters)
    assert result.messages[topics.DEADLETTER.name] == len(letters)

    # The summary agrees with what arrived: read == produced + rejected, per file.
    by_file = Counter()
    for (file, _row, reason), n in manifest(generated).items():
        by_file[(file, reason)] += n
    for name, stats in result.files.items():
        assert stats.read == stats.produced + sum(stats.rejected.values())
        assert dict(stats.rejected) == {r: n for (f, r), n in by_file.items() if f == name}


def test_a_limit_sends_whole_tracks_and_the_worker_joins_every_one(fresh_settings, tmp_path):
    """``produce --limit 3000``: the first 3,000 rows of the tracks file, their album rows,
    features and artists (read here with the csv module), and nothing else; a worker then
    emits each of those tracks complete, with none left waiting."""
    data = tmp_path / "data"
    generate(data, 5000, seed=5)

    def rows(name: str) -> list[dict[str, str]]:
        with open(data / name, newline="", encoding="utf-8-sig") as f:  # a BOM, like Kaggle
            return list(csv.DictReader(f))

    chosen = {r["id"] for r in rows(TRACKS_FILE)[:3000]}
    artists = {r["artist_id"] for r in rows(ALBUMS_FILE) if r["track_id"] in chosen}
    env = {
        **os.environ,
        "SPOTIFY_STREAM_BROKER": fresh_settings.broker,
        "SPOTIFY_STREAM_PRODUCER_IDEMPOTENCE": "off",
        "SPOTIFY_STREAM_PARTITIONS": str(fresh_settings.partitions),
        "SPOTIFY_STREAM_DATA_DIR": str(tmp_path / "producer"),
    }
    proc = subprocess.run(
        [*cli_command(), "produce", "--source", str(data), "--limit", "3000"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr

    def keys(topic: str) -> set[str]:
        return {m.key.decode() for m in asyncio.run(consume_all(fresh_settings, topic))}

    assert keys(topics.TRACKS.name) == chosen
    assert keys(topics.AUDIO_FEATURES.name) == chosen
    assert keys(topics.ARTISTS.name) == artists
    albums = {r["album_id"] for r in rows(ALBUMS_FILE) if r["track_id"] in chosen}
    assert keys(topics.ALBUMS.name) == albums
    with WorkerProcess(fresh_settings, tmp_path / "worker") as worker:
        assert wait_for(
            lambda: (
                (s := worker.get("/pipeline/stats"))["events"].get("emitted", 0) >= 3000
                and s["pending_joins"] == 0
            ),
            120,
        )
        events = worker.get("/pipeline/stats")["events"]
    assert events["emitted"] == 3000 and events.get("emitted_incomplete", 0) == 0
