"""How fast /dashboard loads in headless Chromium, next to a plain JSON page of the same worker.

On a fresh embedded broker: ``--tracks`` generated tracks produced and
enriched by one worker (its lake sink on, 5 s window; popularity windows of
5 and 10 s, so the rolling chart has closed ones), plays simulated for 10 s at
2,000/s, and the lake flushed with them. Then Debian's Chromium
(Playwright) opens a new page ``--loads`` times:

- baseline: ``/pipeline/stats``, the worker's own JSON, to its load event;
- ``/dashboard`` to its load event (the page, its script and Chart.js);
- ``/dashboard`` until every chart shows data, its lake charts' data just
  computed (the worker's cache, as for every viewer but the first of a
  ``dashboard_refresh`` period);
- the same once the cache has expired (``dashboard_refresh`` of 2 s, waited
  out before each load), so every lake chart's named query runs over the lake.

The table shows medians and the ratio to the baseline.

    python -m bench dashboard [--tracks 10000] [--loads 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench import stack_settings, worker_failed
from spotify_stream.dashboard.charts import CHARTS
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.plays import run_simulation
from spotify_stream.ingest.producer import produce

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TTL = 2.0  # dashboard_refresh: short, so that a load after it runs every query
READY = " && ".join(f"Number(document.getElementById('{c.id}')?.dataset.rows) > 0" for c in CHARTS)


def loads(browser, url: str, times: int, until_ready: bool, before=None) -> list[float]:
    """Milliseconds from navigation start to the load event, or to every chart with data."""
    measured = []
    for _ in range(times):
        if before:
            before()
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        started = time.perf_counter()
        page.goto(url, wait_until="load")
        if until_ready:
            page.wait_for_function(READY, timeout=30_000, polling=10)
        measured.append((time.perf_counter() - started) * 1000)
        page.close()
    return measured


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=20)
    args = parser.parse_args()

    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        workdir = Path(tmp)
        data = workdir / "data"
        generate(data, args.tracks, seed=4, anomalies=0)
        settings = stack_settings(
            broker,
            workdir,
            flush_seconds=5,
            dashboard_refresh=TTL,
            # windows of seconds, so that the rolling chart has closed ones after 10 s of plays
            tumbling_window=5,
            hopping_window=10,
            hopping_step=5,
            window_grace=0,
        )
        with WorkerProcess(settings, workdir, loglevel="warn") as worker:
            asyncio.run(produce(settings, str(data)))
            sent = asyncio.run(
                run_simulation(
                    settings, rate=2000, users=500, duration=10, seed=5, stop=asyncio.Event()
                )
            )
            landed = wait_for(
                lambda: (
                    (s := worker.get("/pipeline/stats"))["lake"]["plays"]["rows"] >= sent
                    and s["lake"]["clusters"]["rows"] > 0
                    and s["lake"]["tracks_enriched"]["rows"] >= args.tracks
                ),
                600,
            )
            if not landed:
                raise worker_failed(worker, "the lake did not fill")

            def warm() -> None:  # every lake chart's data computed just now
                for chart in CHARTS:
                    worker.get(f"/dashboard/data/{chart.id}")

            def expire() -> None:
                time.sleep(TTL)

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                dashboard = f"{worker.url}/dashboard"
                loads(browser, dashboard, 2, True)  # imports, first queries
                results["baseline: /pipeline/stats, load event"] = loads(
                    browser, f"{worker.url}/pipeline/stats", args.loads, False
                )
                results["/dashboard, load event"] = loads(browser, dashboard, args.loads, False)
                results["/dashboard, every chart with data (cached)"] = loads(
                    browser, dashboard, args.loads, True, warm
                )
                results["/dashboard, every chart with data (queries run)"] = loads(
                    browser, dashboard, args.loads, True, expire
                )
                browser.close()
            stats = worker.get("/pipeline/stats")["lake"]
    base = statistics.median(results["baseline: /pipeline/stats, load event"])
    print(
        f"\n{args.tracks:,} tracks and {stats['plays']['rows']:,} plays in a file lake, one "
        f"worker, headless Chromium, median of {args.loads} loads\n"
    )
    print("| page | median (ms) | max (ms) | / baseline |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.0f} | {max(values):.0f} | {median / base:.1f} |")


if __name__ == "__main__":
    main()
