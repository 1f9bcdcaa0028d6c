"""The pipeline lands every topic in S3 (moto's server over HTTP), each row exactly once."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess

import pytest

from spotify_stream.embedded.worker import WorkerProcess, settings_env, wait_for
from spotify_stream.ingest.plays import run_simulation
from tests.conftest import cli_command, produce_both_forms
from tests.lake import DATASETS, all_enriched, differences, lake_rows, lake_settings

pytestmark = pytest.mark.slow


def test_every_record_lands_in_s3_exactly_once(
    fresh_settings, generated_halves, tmp_path, moto_endpoint, aws_env
):
    settings = lake_settings(
        fresh_settings, "s3://e2e-lake/lake", moto_endpoint, join_max_wait=3, flush_seconds=1
    )
    produce_both_forms(settings, generated_halves)
    with WorkerProcess(settings, tmp_path) as worker:
        sent = asyncio.run(
            run_simulation(settings, rate=500, users=50, duration=2, seed=3, stop=asyncio.Event())
        )

        assert wait_for(lambda: all_enriched(settings, worker), 120)
        # The lake holds each topic's records, as a multiset: none lost, none twice; and
        # the sink counted what it made visible (a moment after). A new model version
        # may still come meanwhile: both are checked at one moment.

        def settled() -> tuple[dict, dict] | None:
            if differences(settings):
                return None
            lake = {name: len(lake_rows(settings, name)) for name in DATASETS}
            stats = worker.get("/pipeline/stats")
            counted = {name: stats["lake"][name]["rows"] for name in DATASETS}
            return (stats, lake) if counted == lake else None

        result = wait_for(settled, 120, interval=1)
        assert result, differences(settings)
        stats, lake = result
    for name in DATASETS:
        assert stats["lake"][name]["rows"] == lake[name]
        assert stats["lake"][name]["failures"] == 0
    assert len(lake_rows(settings, "plays")) == sent > 0


def test_the_sink_as_its_own_process_lands_every_record_once(
    fresh_settings, generated_halves, tmp_path
):
    """A worker that only streams (SPOTIFY_STREAM_LAKE_SINK=false) and `spotify-stream
    sink` beside it, like a Kafka Connect task: the lake equals the topics; Ctrl-C
    writes what it holds and says what it landed."""
    settings = fresh_settings.model_copy(
        update={"lake": f"file://{tmp_path}/lake", "join_max_wait": 3, "flush_seconds": 1}
    )
    produce_both_forms(settings, generated_halves)
    with WorkerProcess(settings.model_copy(update={"lake_sink": False}), tmp_path) as worker:
        sink = subprocess.Popen(
            [*cli_command(), "sink"],
            cwd=tmp_path,
            env=settings_env(settings.model_copy(update={"data_dir": tmp_path / "sink"})),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            sent = asyncio.run(
                run_simulation(
                    settings, rate=500, users=50, duration=2, seed=3, stop=asyncio.Event()
                )
            )
            assert wait_for(lambda: all_enriched(settings, worker), 120)
            assert wait_for(lambda: not differences(settings), 120, interval=1), differences(
                settings
            )
            assert worker.get("/pipeline/stats")["lake"] == {}  # the worker landed nothing
        finally:
            sink.send_signal(signal.SIGINT)
            out, err = sink.communicate(timeout=60)
    assert sink.returncode == 0, err
    assert "Traceback" not in err
    assert re.search(rf"plays\s+│\s+{sent:,}\s+│\s+\d+\s+│\s+{sent:,}\s", out), out
    assert len(lake_rows(settings, "plays")) == sent > 0
