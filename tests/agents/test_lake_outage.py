"""S3 goes away mid-run and comes back: the sink pauses under its memory bound, then catches up.

The S3 server (moto's, over HTTP) is stopped while records keep flowing, and
started again on the same port (moto keeps its buckets in the process). The
worker is not restarted: it must resume by itself and land every record once.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from moto.server import ThreadedMotoServer

from spotify_stream.embedded import free_port
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.plays import run_simulation
from tests.conftest import produce_both_forms
from tests.lake import differences, lake_settings

pytestmark = pytest.mark.slow

BOUND = 256 << 10
#: What one poll may add past the bound: the sink checks it between polls
#: (1,000 messages at most, well under 1 KiB each here).
ONE_POLL = 1000 * 1024


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_an_s3_outage_pauses_the_sink_which_then_lands_everything_once(
    fresh_settings, generated_halves, tmp_path, aws_env
):
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    settings = lake_settings(
        fresh_settings,
        "s3://outage-lake/lake",
        endpoint,
        join_max_wait=3,
        flush_seconds=0.5,
        sink_max_rows=300,
        sink_max_memory=BOUND,
        s3_max_attempts=2,
        connect_timeout=2,
    )
    produce_both_forms(settings, generated_halves)
    try:
        with WorkerProcess(settings, tmp_path) as worker:
            playing = threading.Thread(
                target=lambda: asyncio.run(
                    run_simulation(
                        settings, rate=1500, users=80, duration=20, seed=5, stop=asyncio.Event()
                    )
                )
            )
            playing.start()
            lake = lambda: worker.get("/pipeline/stats")["lake"]  # noqa: E731
            # Every partition of the plays has a buffer (the sink has read and written it).
            assert wait_for(lambda: lake()["plays"]["files"] >= 4, 60)
            server.stop()
            outage_started = time.monotonic()
            held, paused, rss = [], False, []
            while time.monotonic() - outage_started < 15:
                stats = worker.get("/pipeline/stats")
                held.append(sum(s["held_bytes"] for s in stats["lake"].values()))
                paused = paused or stats["lake_paused"]
                rss.append(rss_kib(worker.process.pid))
                time.sleep(0.25)
            playing.join()
            failures = sum(s["failures"] for s in lake().values())
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()
            settled = wait_for(lambda: not differences(settings), 120, interval=1)
            stats = worker.get("/pipeline/stats")
            assert worker.process.poll() is None  # never restarted
    finally:
        server.stop()
    print(f"held at most {max(held):,} bytes (bound {BOUND:,}); RSS {min(rss)}..{max(rss)} KiB")
    assert failures > 0 and paused
    assert max(held) <= BOUND + ONE_POLL
    assert settled, differences(settings)
    assert not stats["lake_paused"]
    assert all(s["pending"] == 0 and s["held_bytes"] == 0 for s in stats["lake"].values())
