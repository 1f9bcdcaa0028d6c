import os
import re
import subprocess

import duckdb
import pyarrow.parquet as pq
import pytest

from spotify_stream.embedded import free_port
from tests.conftest import cli_command


def run(*args, cwd, env=None):
    return subprocess.run(
        [*cli_command(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "command",
    [
        "broker",
        "generate",
        "produce",
        "simulate-plays",
        "worker",
        "demo",
        "report",
        "query",
        "catalog",
    ],
)
def test_every_command_has_help(command, tmp_path):
    proc = run(command, "--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"Usage: spotify-stream {command}")


def test_bad_arguments_are_one_line(tmp_path):
    proc = run("generate", "--out", str(tmp_path), "--tracks", "0", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--tracks" in proc.stderr
    proc = run(
        "produce",
        "--source",
        str(tmp_path),
        cwd=tmp_path,
        env={"SPOTIFY_STREAM_PARTITIONS": "zero"},
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: invalid setting")


def test_worker_without_a_broker_is_one_line(tmp_path):
    port = free_port()
    proc = run(
        "worker",
        cwd=tmp_path,
        env={
            "SPOTIFY_STREAM_BROKER": f"kafka://127.0.0.1:{port}",
            "SPOTIFY_STREAM_CONNECT_TIMEOUT": "2",
        },
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach Kafka at 127.0.0.1:{port} (")
    assert line.endswith("start one with `spotify-stream broker` or set SPOTIFY_STREAM_BROKER")


def test_generate_writes_the_kaggle_files(tmp_path):
    proc = run("generate", "--out", "d", "--tracks", "50", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "_anomalies.csv",
        "spotify-albums_data_2023.csv",
        "spotify_artist_data_2023.csv",
        "spotify_features_data_2023.csv",
        "spotify_tracks_data_2023.csv",
    ]


@pytest.mark.slow
def test_demo_runs_to_its_summary(tmp_path):
    port = free_port()

    def demo(duration: str) -> subprocess.CompletedProcess:
        env = {"SPOTIFY_STREAM_WEB_PORT": str(port)}
        proc = run("demo", "--tracks", "500", "--duration", duration, cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        return proc

    proc = demo("1")
    steps = re.findall(r"^(\d+)\. ", proc.stdout, re.M)
    assert steps == [str(n) for n in range(1, 11)]
    assert "spotify.tracks         │      500" in proc.stdout
    assert re.search(r"6\. sent 3,\d{3} plays: 3,000 played over the past 2 hours", proc.stdout)
    # the backfilled plays closed hourly windows: the worker's leaderboard has them
    shown = re.search(r"popularity: (\d+) artists played in the last closed hour", proc.stdout)
    assert shown and int(shown[1]) > 0
    assert "enriched tracks emitted: 500 (0 incomplete" in proc.stdout
    assert f"monitoring: http://127.0.0.1:{port}/pipeline/stats" in proc.stdout
    assert "demo finished" in proc.stdout
    # An example recommendation for the heaviest listener, from the worker's endpoint.
    assert "recommended for user-000000" in proc.stdout
    # It ends with Parquet in ./demo/lake, counted per dataset as the footers tell: one row
    # per track, labelled (500 tracks, fewer than the warm-up: the model came once the
    # features stream was quiet, and the tracks waited for it).
    lake = tmp_path / "demo" / "lake" / "curated"
    enriched = pq.read_table(lake / "tracks_enriched")  # dt=/hr= folders as columns
    assert sorted(enriched["track_id"].to_pylist()) == sorted(set(enriched["track_id"].to_pylist()))
    assert enriched.num_rows == 500
    assert all(r["model_version"] is not None for r in enriched.to_pylist())
    for dataset in ("artists", "albums", "plays", "popularity", "tracks_enriched", "clusters"):
        rows = pq.read_table(lake / dataset).num_rows
        assert rows > 0 and re.search(rf"{dataset}\s+│\s+\d+\s+│\s+{rows:,}\b", proc.stdout)
    assert f"dashboard: http://127.0.0.1:{port}/dashboard" in proc.stdout
    # and with the report: index.html and a PNG per lake chart
    assert "report: demo/report/index.html (5 charts as PNG beside it)" in proc.stdout
    page = (tmp_path / "demo" / "report" / "index.html").read_text()
    for name in ("top_albums", "most_streamed_artists", "cluster_scatter", "cluster_profiles"):
        assert f'<img src="{name}.png"' in page
        assert (tmp_path / "demo" / "report" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    # and with the local catalog, and two named queries over it
    assert "10. local catalog: demo/lake.duckdb (DuckDB views artists, albums, tracks_enriched" in (
        proc.stdout
    )
    with duckdb.connect(str(tmp_path / "demo" / "lake.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM plays").fetchone()[0] == (
            pq.read_table(lake / "plays").num_rows
        )
        artists = con.execute(
            "SELECT artist_id FROM plays JOIN (SELECT DISTINCT track_id, artist_id "
            "FROM tracks_enriched) USING (track_id) GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
        ).fetchone()[0]
    assert "most streamed artists (spotify-stream query most_streamed_artists)" in proc.stdout
    first_row = proc.stdout.split("most streamed artists")[1].split("\n")[3]
    assert first_row.startswith(f" {artists} ")
    # A by-hand lake in ./lake is the user's: a second demo run starts its own lake
    # afresh (its broker does: still 500 tracks, each once) and touches nothing else.
    mine = tmp_path / "lake" / "curated" / "plays" / "dt=2026-01-01" / "hr=00"
    mine.mkdir(parents=True)
    (mine / "part-0-0000000000-0000000009.parquet").write_bytes(b"a by-hand session's rows")
    (tmp_path / "lake" / "_pipeline.json").write_text("{}")
    before = {p: p.read_bytes() for p in (tmp_path / "lake").rglob("*") if p.is_file()}
    again = demo("0")
    assert "cleared the lake and state of an earlier demo run in demo/" in again.stdout
    assert "no example recommendation: no plays of user user-000000" in again.stdout
    tracks = pq.read_table(lake / "tracks_enriched")["track_id"].to_pylist()
    assert sorted(tracks) == sorted(set(tracks)) and len(tracks) == 500
    assert {p: p.read_bytes() for p in (tmp_path / "lake").rglob("*") if p.is_file()} == before
    # a directory the demo did not make is never cleared
    proc = run("demo", "--dir", "lake", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "error: lake holds files the demo did not make; give the demo its own directory with --dir"
    )
    assert {p: p.read_bytes() for p in (tmp_path / "lake").rglob("*") if p.is_file()} == before


def test_an_unreachable_s3_lake_and_two_queries_at_once(tmp_path):
    """The world refused (exit 1) or two queries were given (exit 2); the other mistakes
    are in test_cli_mistakes.py."""
    env = {
        "SPOTIFY_STREAM_LAKE": "s3://nobucket/x",
        "SPOTIFY_STREAM_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    proc = run("query", "top_albums", cwd=tmp_path, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: cannot read the lake at s3://nobucket/x: ")
    proc = run("query", "top_albums", "--sql", "select 1", cwd=tmp_path)
    assert proc.returncode == 2 and "give a query NAME or --sql, not both" in proc.stderr
