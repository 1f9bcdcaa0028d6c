"""A newcomer's usual mistakes, through the real command: each is one ``error:`` line
and an exit code that says whose it is (2: what was typed or configured, 1: the world
refused), never a traceback or "internal error". (Ctrl-C, exit 130:
tests/ingest/test_malformed_input.py.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from spotify_stream.embedded import free_port
from spotify_stream.ingest.generator import generate
from tests.conftest import cli_command

NO_CREDENTIALS = (
    "error: no AWS credentials for s3://nobucket/x: set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or run where an instance role applies"
)
NO_LAKE = "error: no lake at file:///proc/x: it is not a directory"


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The command with no AWS credentials anywhere in the standard chain."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPOTIFY_STREAM_"))}
    base |= {
        "AWS_SHARED_CREDENTIALS_FILE": str(cwd / "no-credentials"),
        "AWS_CONFIG_FILE": str(cwd / "no-config"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return subprocess.run(
        [*cli_command(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=base | (env or {}),
    )


def one_line(proc: subprocess.CompletedProcess, code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    return line


S3 = {"SPOTIFY_STREAM_LAKE": "s3://nobucket/x"}
PROC = {"SPOTIFY_STREAM_LAKE": "file:///proc/x"}


@pytest.mark.parametrize(
    ("args", "env", "code", "line"),
    [
        (["query", "--sql", "selec 1"], {}, 2, "error: the SQL does not parse: Invalid expression"),
        (["query", "-v", "--sql", "selec 1"], {}, 2, "error: the SQL does not parse:"),
        (
            ["query", "top_albums", "--param", "n"],
            {},
            2,
            "error: Invalid value for --param: 'n' is not K=V (see spotify-stream query --help)",
        ),
        (["query", "nope"], {}, 2, "error: no query nope; the named queries are "),
        (
            ["generate", "--out", "/proc/nope"],
            {},
            2,
            "error: cannot create the directory /proc/nope:",
        ),
        (
            ["report", "--out", "/proc/nope"],
            {},
            2,
            "error: cannot create the directory /proc/nope:",
        ),
        (
            ["catalog", "sync", "--duckdb", "/proc/nope/x.duckdb"],
            {},
            2,
            "error: cannot create the directory /proc/nope:",
        ),
        (["query", "top_albums"], S3, 1, NO_CREDENTIALS),
        (["report", "--out", "r"], S3, 1, NO_CREDENTIALS),
        (["catalog", "sync", "--target", "glue"], S3, 1, NO_CREDENTIALS),
        (["produce", "--source", "s3://nobucket/x"], {}, 1, NO_CREDENTIALS),
        (["query", "top_albums"], PROC, 2, NO_LAKE),
        (["report"], PROC, 2, NO_LAKE),
        (["catalog", "sync"], PROC, 2, NO_LAKE),
        (
            ["simulate-plays", "--backfill", "2 hours"],
            {},
            2,
            "error: Invalid value for '--backfill'",
        ),
    ],
)
def test_a_mistake_is_one_line(tmp_path, args, env, code, line):
    (tmp_path / "lake").mkdir()  # the default ./lake, empty: the mistake is the only one
    got = one_line(run(*args, cwd=tmp_path, env=env), code)
    assert got.startswith(line), got


def test_verbose_anywhere_and_no_arguments(tmp_path):
    (tmp_path / "lake").mkdir()
    for args in (["-v", "query", "top_albums"], ["query", "top_albums", "-v"]):
        proc = run(*args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().endswith("0 rows")
    proc = run("query", cwd=tmp_path)  # what there is to run
    assert proc.returncode == 0, proc.stderr
    assert "most_streamed_artists" in proc.stdout and "artist_id (required)" in proc.stdout


def test_the_worker_words_missing_credentials_the_same(tmp_path, broker):
    env = S3 | {
        "SPOTIFY_STREAM_BROKER": f"kafka://{broker.bootstrap}",
        "SPOTIFY_STREAM_APP_ID": "mistakes-worker",
        "SPOTIFY_STREAM_DATA_DIR": str(tmp_path / "state"),
    }
    assert one_line(run("worker", cwd=tmp_path, env=env), 1) == NO_CREDENTIALS


def test_a_security_mismatch_says_so(tmp_path, broker):
    """sasl_scram (or TLS) against the embedded broker's plaintext listener."""
    (tmp_path / "data").mkdir()
    env = {
        "SPOTIFY_STREAM_BROKER": f"kafka://{broker.bootstrap}",
        "SPOTIFY_STREAM_KAFKA_SECURITY": "sasl_scram",
        "SPOTIFY_STREAM_KAFKA_USERNAME": "alice",
        "SPOTIFY_STREAM_KAFKA_PASSWORD": "secret",
        "SPOTIFY_STREAM_CONNECT_TIMEOUT": "3",
    }
    generate(tmp_path / "data", 20, seed=1)
    line = one_line(run("produce", "--source", "data", cwd=tmp_path, env=env), 1)
    assert line == (
        f"error: Kafka at {broker.bootstrap} accepts connections but never answered a "
        "sasl_scram client: does its listener use another protocol? "
        "(SPOTIFY_STREAM_KAFKA_SECURITY and the port must match the broker's listener)"
    )
    # a port nobody listens on is still "cannot reach"
    env["SPOTIFY_STREAM_BROKER"] = f"kafka://127.0.0.1:{free_port()}"
    line = one_line(run("produce", "--source", "data", cwd=tmp_path, env=env), 1)
    assert line.startswith("error: cannot reach Kafka at 127.0.0.1:")
