"""The live dashboard of a running pipeline: JSON endpoints (data equal to the named
queries, errors as JSON), and headless Chromium (Debian's, driven by Playwright) drawing
every chart, showing the named queries' numbers, and its rolling chart moving on after
more plays, without a reload. A screenshot lands in test-artifacts/."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from spotify_stream import topics
from spotify_stream.dashboard.charts import CHARTS
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.producer import produce
from spotify_stream.settings import Settings
from spotify_stream.warehouse.query import named, run_duckdb
from tests.conftest import pipeline_settings, plays_drained, send_records
from tests.reference import reference_enriched

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
START = dt.datetime(2026, 11, 24, 8, tzinfo=dt.UTC)  # on a 10-minute boundary


def plays(tracks: list[str], first: dt.datetime, n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "user_id": f"user-{rng.randrange(30)}",
            "track_id": rng.choice(tracks),
            "played_at": first + dt.timedelta(seconds=1.2 * i),
            "ms_played": 60_000,
            "skipped": rng.random() < 0.2,
            "session_id": "s",
        }
        for i in range(n)
    ]


class Pipeline:
    """A worker with a lake, fed the generated catalog and scripted plays."""

    def __init__(self, settings: Settings, worker: WorkerProcess, tracks: list[str]) -> None:
        self.settings, self.worker, self.tracks = settings, worker, tracks
        self.sent = 0

    def play(self, first: dt.datetime, n: int, seed: int) -> None:
        """``n`` plays over 1.2 n seconds from ``first``, then one 25 minutes after the last,
        once they are read: its time closes the windows they fall in."""
        batch = plays(self.tracks, first, n, seed)
        closer = batch[-1] | {"played_at": batch[-1]["played_at"] + dt.timedelta(minutes=25)}
        for records in (batch, [closer]):
            asyncio.run(send_records(self.settings, [(topics.PLAYS, p) for p in records]))
            self.sent += len(records)
            assert wait_for(self.drained, 60)

    def drained(self) -> bool:
        return plays_drained(self.worker, self.sent) and (
            self.worker.get("/pipeline/stats")["lake"]["plays"]["read"] >= self.sent
        )


@pytest.fixture(scope="module")
def pipeline(generated, tmp_path_factory):
    workdir: Path = tmp_path_factory.mktemp("dashboard")
    with EmbeddedBroker() as broker:
        settings = pipeline_settings(
            broker,
            workdir,
            cluster_warmup=300,
            tumbling_window=600,
            hopping_window=1200,
            hopping_step=600,
            window_grace=0,
            dashboard_refresh=1,
            dashboard_live_refresh=1,
        )
        complete = sorted(t for t, r in reference_enriched(generated).items() if r["complete"])
        with WorkerProcess(settings, workdir) as worker:
            asyncio.run(produce(settings, str(generated)))
            assert wait_for(
                lambda: (
                    (s := worker.get("/pipeline/stats"))["cluster_model"]
                    and not s["unlabelled_tracks"]
                    and s["lake"]["clusters"]["rows"] > 0
                ),
                180,
            )
            feed = Pipeline(settings, worker, complete[:200])
            feed.play(START, 600, seed=1)
            assert wait_for(lambda: worker.get("/dashboard/data/rolling_artists")["rows"], 60)
            yield feed


def fetch(worker: WorkerProcess, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(worker.url + path, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def named_rows(settings: Settings, chart_id: str) -> list[dict]:
    chart = next(c for c in CHARTS if c.id == chart_id)
    rows = run_duckdb(settings, named(chart.query).bind(chart.params)).to_pylist()
    return [{k: v.isoformat() if isinstance(v, dt.date) else v for k, v in r.items()} for r in rows]


def test_endpoints(pipeline):
    worker, settings = pipeline.worker, pipeline.settings
    status, kind, body = fetch(worker, "/dashboard")
    assert status == 200 and kind.startswith("text/html") and b"dashboard.js" in body
    for asset, mime in (
        ("dashboard.js", "text/javascript"),
        ("chart.umd.min.js", "text/javascript"),
    ):
        status, kind, body = fetch(worker, f"/dashboard/static/{asset}")
        assert status == 200 and kind.startswith(mime) and len(body) > 1000
    assert b"Chart.js v4" in fetch(worker, "/dashboard/static/chart.umd.min.js")[2]
    # every chart of the page has data, and the lake charts are the named queries
    charts = worker.get("/dashboard/charts")["charts"]
    assert [c["id"] for c in charts] == [c.id for c in CHARTS]
    for chart in ("top_albums", "most_streamed_artists", "top_genres_over_time"):
        rows = worker.get(f"/dashboard/data/{chart}")["rows"]
        assert rows and rows == named_rows(settings, chart), chart
    # (the newest version's profiles land in the lake over a flush or two)
    clusters = wait_for(
        lambda: (
            (c := worker.get("/dashboard/data/cluster_scatter")["clusters"])
            and len(c["profiles"]) == settings.cluster_k
            and c
        ),
        30,
    )
    assert clusters and clusters["points"]
    panel = worker.get("/dashboard/data/pipeline")
    assert {t["topic"] for t in panel["topics"]} >= {topics.TRACKS.name, topics.PLAYS.name}
    stats = worker.get("/pipeline/stats")
    assert panel["dead_letters"] == stats["dead_letters"]
    assert [d["dataset"] for d in panel["lake"]] == list(stats["lake"])
    # errors are JSON
    for path, code in (
        ("/dashboard/data/nope", 404),
        ("/dashboard/static/secrets.txt", 404),
        ("/no/such/route", 404),
        ("/dashboard/data/rolling_artists?n=0", 400),
        ("/dashboard/data/rolling_artists?n=abc", 400),
    ):
        status, kind, body = fetch(worker, path)
        assert (status, kind.split(";")[0]) == (code, "application/json"), path
        assert "error" in json.loads(body), path


def test_the_browser_draws_every_chart(pipeline):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: ./dev test installs it"
    worker, settings = pipeline.worker, pipeline.settings
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        requests: list[str] = []
        logged: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: logged.append(m.text))
        page.goto(f"{worker.url}/dashboard")
        page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        load_ms = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
        print(f"/dashboard loaded in {load_ms:.0f} ms")
        # every chart drawn with data; canvases for the drawn kinds
        ids = [chart.id for chart in CHARTS]
        try:
            page.wait_for_function(
                f"{ids!r}.every(id => Number(document.getElementById(id).dataset.rows) > 0)",
                timeout=30_000,
            )
        except PlaywrightTimeout:
            states = {i: page.locator(f"#{i} .meta").text_content() for i in ids}
            raise AssertionError(f"charts without data: {states}; console: {logged}") from None
        for chart in CHARTS:
            section = page.locator(f"section#{chart.id}")
            if chart.kind in ("bar", "line", "scatter", "table"):  # table: records/s chart
                box = section.locator("canvas").bounding_box()
                assert box and box["width"] > 200 and box["height"] > 200, chart.id
        # every cluster is drawn in its legend's colour, outline shapes (crosses) too
        drawn = page.evaluate(
            """() => {
              const chart = Chart.getChart(document.querySelector('#cluster_scatter canvas'));
              return chart.legend.legendItems.map((item, i) => {
                const point = chart.getDatasetMeta(i).data[0].options;
                return [item.text, item.fillStyle, point.backgroundColor, point.borderColor];
              });
            }"""
        )
        assert len(drawn) >= 2
        for label, legend, fill, border in drawn:
            assert fill == legend and border == legend, (label, legend, fill, border)
        # no card is wider than its column, and the page does not scroll sideways
        overflowing = page.evaluate(
            """() => [...document.querySelectorAll('main > section')]
                 .filter(s => s.scrollWidth > s.clientWidth).map(s => s.id)"""
        )
        assert overflowing == []
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # the numbers shown are the named queries'
        for chart_id, label, value in (
            ("top_albums", "name", "popularity"),
            ("most_streamed_artists", "artist_name", "plays"),
        ):
            cells = page.locator(f"#{chart_id} table.numbers tbody tr").all()
            shown = [[c.text_content() for c in row.locator("td").all()] for row in cells]
            expected = named_rows(settings, chart_id)
            assert shown == [[r[label], f"{r[value]:,}"] for r in expected], chart_id
        # more plays: the rolling window moves on, without a reload
        before = page.locator("#rolling_artists .meta").get_attribute("data-window")
        with ThreadPoolExecutor(1) as thread:  # (Playwright's sync API holds this one's loop)
            thread.submit(pipeline.play, START + dt.timedelta(minutes=40), 400, 2).result()
        # the newest window with plays that the last play closes: [+40 min, +60 min)
        end = (START + dt.timedelta(minutes=60)).isoformat()
        after = wait_for(
            lambda: (r := worker.get("/dashboard/data/rolling_artists"))["window_end"] == end and r,
            60,
        )
        assert after, "the worker's rolling window never reached the last plays"
        window = f"{after['window_start']}/{after['window_end']}"
        assert window != before and len(after["rows"]) == 10
        page.wait_for_function(
            f"document.querySelector('#rolling_artists .meta').dataset.window === {window!r}",
            timeout=30_000,
        )
        rows = page.locator("#rolling_artists table.numbers tbody tr").all()
        shown = [[c.text_content() for c in row.locator("td").all()] for row in rows]
        assert shown == [[r["name"], f"{r['plays']:,}"] for r in after["rows"]]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        browser.close()
    # nothing but the worker was asked: the page works offline
    assert requests and all(url.startswith(worker.url) for url in requests)
