"""Bad input through the real CLI: one clear line or a dead letter, nothing valid lost."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from spotify_stream import topics
from spotify_stream.embedded import free_port
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.sources import ALBUMS_FILE, ARTISTS_FILE, FEATURES_FILE, TRACKS_FILE
from spotify_stream.models import codec_for
from tests.conftest import cli_command, consume_all

pytestmark = pytest.mark.slow
TRACKS = 300


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pristine")
    generate(out, TRACKS, seed=3)
    return out


@pytest.fixture
def data(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(pristine, copy)
    return copy


def rows(path: Path) -> int:
    """Data records in a pristine file (the generator writes CRLF-terminated records)."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


def run_produce(settings, source: Path, cwd: Path, broker: str | None = None):
    env = {
        **os.environ,
        "SPOTIFY_STREAM_BROKER": broker or settings.broker,
        "SPOTIFY_STREAM_PRODUCER_IDEMPOTENCE": "off",
        "SPOTIFY_STREAM_PARTITIONS": "4",
        "SPOTIFY_STREAM_CONNECT_TIMEOUT": "5",
    }
    return subprocess.run(
        [*cli_command(), "produce", "--source", str(source)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_clean_failure(proc, *needles: str) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, proc.stderr
    for needle in needles:
        assert needle in error_lines[0], error_lines[0]


async def counts(settings) -> Counter:
    return Counter(
        {
            t.name: len(await consume_all(settings, t.name))
            for t in (topics.ARTISTS, topics.ALBUMS, topics.TRACKS, topics.AUDIO_FEATURES)
        }
    )


async def dead_letters(settings) -> list[dict]:
    codec = codec_for("DeadLetter")
    return [codec.decode(m.value) for m in await consume_all(settings, topics.DEADLETTER.name)]


async def test_truncated_file_dead_letters_the_cut_row(fresh_settings, data, pristine, tmp_path):
    text = (data / ALBUMS_FILE).read_bytes()
    last = text.rstrip(b"\r\n").rfind(b"\n") + 1
    (data / ALBUMS_FILE).write_bytes(text[: last + 30])  # cut inside the last record
    proc = run_produce(fresh_settings, data, tmp_path)
    assert proc.returncode == 0, proc.stderr
    letters = await dead_letters(fresh_settings)
    assert [(d["source"], d["reason"], d["row"]) for d in letters] == [
        (ALBUMS_FILE, "malformed_row", rows(pristine / ALBUMS_FILE))
    ]
    got = await counts(fresh_settings)
    assert got[topics.TRACKS.name] == TRACKS  # the cut track still comes from the tracks file
    assert got[topics.AUDIO_FEATURES.name] == rows(pristine / FEATURES_FILE)


async def test_wrong_header_names_the_missing_columns(fresh_settings, data, pristine, tmp_path):
    body = (data / ARTISTS_FILE).read_bytes().split(b"\n", 1)[1]
    (data / ARTISTS_FILE).write_bytes(b"artist,pop,followers\n" + body)
    proc = run_produce(fresh_settings, data, tmp_path)
    assert proc.returncode == 1
    assert_clean_failure(proc, ARTISTS_FILE, "lacks required columns", "id", "name")
    got = await counts(fresh_settings)
    assert got[topics.ARTISTS.name] == 0
    assert got[topics.TRACKS.name] == TRACKS
    assert got[topics.AUDIO_FEATURES.name] == rows(pristine / FEATURES_FILE)


async def test_binary_garbage_file_and_garbage_lines(fresh_settings, data, pristine, tmp_path):
    (data / FEATURES_FILE).write_bytes(os.urandom(64_000).replace(b"\n", b"\x00"))
    lines = (data / TRACKS_FILE).read_bytes().split(b"\r\n")
    lines.insert(10, b"\xde\xad\xbe\xef,\xff\xfe,\x80")
    (data / TRACKS_FILE).write_bytes(b"\r\n".join(lines))
    proc = run_produce(fresh_settings, data, tmp_path)
    assert proc.returncode == 1
    assert_clean_failure(proc, FEATURES_FILE)
    letters = await dead_letters(fresh_settings)
    assert [(d["source"], d["reason"], d["raw"]) for d in letters] == [
        (TRACKS_FILE, "bad_encoding", b"\xde\xad\xbe\xef,\xff\xfe,\x80\r\n")
    ]
    got = await counts(fresh_settings)
    assert got[topics.TRACKS.name] == TRACKS
    assert got[topics.AUDIO_FEATURES.name] == 0


async def test_ten_megabyte_field_is_dead_lettered_with_its_size(
    fresh_settings, data, pristine, tmp_path
):
    huge = b"x" * (10 * 1024 * 1024)
    with open(data / ARTISTS_FILE, "ab") as fh:
        fh.write(b'bigid,"' + huge + b'",50,[],10\r\n')
    proc = run_produce(fresh_settings, data, tmp_path)
    assert proc.returncode == 0, proc.stderr
    letters = await dead_letters(fresh_settings)
    assert len(letters) == 1
    assert letters[0]["reason"] == "field_too_large"
    assert letters[0]["raw_size"] > len(huge)
    assert len(letters[0]["raw"]) == fresh_settings.deadletter_max_raw_bytes
    assert (await counts(fresh_settings))[topics.ARTISTS.name] == rows(pristine / ARTISTS_FILE)


async def test_missing_file_is_reported_and_the_rest_produced(
    fresh_settings, data, pristine, tmp_path
):
    (data / TRACKS_FILE).unlink()
    proc = run_produce(fresh_settings, data, tmp_path)
    assert proc.returncode == 1
    assert_clean_failure(proc, TRACKS_FILE, "not found")
    got = await counts(fresh_settings)
    assert got[topics.TRACKS.name] == TRACKS  # from the albums file, without popularity
    codec = codec_for("Track")
    tracks = [codec.decode(m.value) for m in await consume_all(fresh_settings, topics.TRACKS.name)]
    assert {t["popularity"] for t in tracks} == {None}
    assert got[topics.ARTISTS.name] == rows(pristine / ARTISTS_FILE)


def test_missing_directory_and_unreachable_broker(data, tmp_path, fresh_settings):
    proc = run_produce(fresh_settings, tmp_path / "nope", tmp_path)
    assert proc.returncode == 2
    assert_clean_failure(proc, "source directory not found")

    proc = run_produce(fresh_settings, data, tmp_path, broker=f"127.0.0.1:{free_port()}")
    assert proc.returncode == 1
    assert_clean_failure(proc, "cannot reach Kafka", "SPOTIFY_STREAM_BROKER")


async def test_ctrl_c_flushes_and_reports(fresh_settings, data, tmp_path):
    import asyncio
    import signal
    import time

    env = {
        **os.environ,
        "SPOTIFY_STREAM_BROKER": fresh_settings.broker,
        "SPOTIFY_STREAM_PRODUCER_IDEMPOTENCE": "off",
        "SPOTIFY_STREAM_PARTITIONS": "4",
    }
    proc = subprocess.Popen(
        [*cli_command(), "produce", "--source", str(data), "--rate", "50"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while (
        not (await consume_all(fresh_settings, topics.ALBUMS.name)) and time.monotonic() < deadline
    ):
        await asyncio.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr  # the shell's code for Ctrl-C, after the summary
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "interrupted"
    assert "interrupted after" in stdout
    got = await counts(fresh_settings)
    assert got[topics.ALBUMS.name] > 0 and got[topics.TRACKS.name] < TRACKS
    albums_line = next(line for line in stdout.splitlines() if "spotify.albums" in line)
    assert f"{got[topics.ALBUMS.name]:,}" in albums_line  # the summary counts what arrived


async def test_values_a_csv_holds_and_a_schema_cannot_are_rejected_with_a_reason(
    fresh_settings, data, pristine, tmp_path
):
    """The cells that crashed produce (a long past Avro's, an int past 2^31, a float
    too large for a long, a list literal nested past Python's parser): each row is
    rejected as bad_value and produce ends with its summary."""
    import csv

    def hostile(name: str, cells: dict[int, dict[str, str]]) -> None:
        with open(data / name, newline="", encoding="utf-8-sig") as fh:
            table = list(csv.DictReader(fh))
            header = list(table[0])
        for row, values in cells.items():
            table[row].update(values)
        with open(data / name, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, header)
            writer.writeheader()
            writer.writerows(table)

    hostile(ALBUMS_FILE, {3: {"duration_ms": "9223372036854775808"}})
    hostile(
        ARTISTS_FILE,
        {2: {"followers": "1e30"}, 5: {"artist_genres": "[" * 50_000 + "]" * 50_000}},
    )
    hostile(FEATURES_FILE, {4: {"time_signature": str(2**31)}})
    proc = run_produce(fresh_settings, data, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = proc.stdout
    for name in (ALBUMS_FILE, ARTISTS_FILE, FEATURES_FILE, TRACKS_FILE):
        (line,) = [row for row in summary.splitlines() if name in row]
        read, produced, rejected = (int(c.strip().replace(",", "")) for c in line.split("│")[2:5])
        assert read == produced + rejected == rows(pristine / name)
    letters = await dead_letters(fresh_settings)
    assert sorted((d["source"], d["reason"], d["row"]) for d in letters) == [
        (ALBUMS_FILE, "bad_value", 4),
        (ARTISTS_FILE, "bad_value", 3),
        (FEATURES_FILE, "bad_value", 5),
    ]
    details = {d["source"]: d["detail"] for d in letters}
    assert "outside the range of an Avro long" in details[ALBUMS_FILE]
    assert "outside the range of an Avro int" in details[FEATURES_FILE]
    got = await counts(fresh_settings)
    assert got[topics.ARTISTS.name] == rows(pristine / ARTISTS_FILE) - 1  # the deep list is kept
