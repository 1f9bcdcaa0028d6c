"""``spotify-stream demo``: the whole pipeline on the embedded defaults.

Broker, generated catalog, a stream worker, the producer and simulated plays;
it ends with what the worker did, where its monitoring pages are, and the
Parquet it landed in the lake, counted per dataset.

Everything it writes is in its own directory (``./demo`` by default): the
generated files in ``data/``, the lake in ``lake/``, the worker's state in
``state/``, the report in ``report/`` and the local catalog ``lake.duckdb``.
Its broker starts empty each time, so a second run clears the first one's
lake and state, and only there: a directory the demo did not make (no
``.spotify-stream-demo`` stamp) is an error, never cleared.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from spotify_stream import console, topics
from spotify_stream.dashboard.report import write_report
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.errors import UsageError, UserError
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.plays import run_simulation
from spotify_stream.ingest.producer import produce
from spotify_stream.runtime import Interrupted, run_async
from spotify_stream.settings import Settings
from spotify_stream.sink.objects import inventory
from spotify_stream.sink.storage import Storage, storage_for
from spotify_stream.warehouse.catalog import sync_local
from spotify_stream.warehouse.query import named, run_duckdb

T = TypeVar("T")
STAMP = ".spotify-stream-demo"
BACKFILL_SECONDS, BACKFILL_PLAYS = 2 * 3600, 3000
POPULARITY_TOP = "/popularity/top?entity=artist&window=1h"


def run_demo(
    settings: Settings, *, tracks: int, duration: float, workdir: Path, serve: bool = False
) -> None:
    console.out.rule("spotify-stream demo")
    _prepare(workdir)
    data_dir, report_dir = workdir / "data", workdir / "report"
    with EmbeddedBroker() as broker:
        settings = settings.model_copy(
            update={
                "broker": f"kafka://{broker.bootstrap}",
                "producer_idempotence": "off",
                "lake": f"file://{(workdir / 'lake').resolve()}",
                "data_dir": workdir / "state",
                # the dashboard's lake charts fill while the demo runs (and with --serve)
                "flush_seconds": min(settings.flush_seconds, 5),
                "dashboard_refresh": min(settings.dashboard_refresh, 10),
                # a small demo still gets its clusters (a quarter of its tracks at most)
                "cluster_warmup": max(10, min(settings.cluster_warmup, tracks // 4)),
            }
        )
        step = _Steps()
        step(f"embedded broker on {broker.bootstrap}")
        written = generate(data_dir, tracks, seed=42, anomalies=0.01)
        step(
            f"generated {tracks:,} tracks in {data_dir}/ "
            f"({sum(written.values()):,} rows in 4 files, 1% anomalies)"
        )
        worker = WorkerProcess(
            settings, Path(settings.data_dir), "demo-worker", web_port=settings.web_port
        )
        with console.out.status("starting a stream worker"):
            worker.start()
        step(f"stream worker running (log: {worker.log})")
        try:
            step("producing the catalog")
            with console.file_progress() as update:
                result = run_async(
                    lambda stop: produce(settings, str(data_dir), stop=stop, progress=update)
                )
            console.produce_summary(result)
            produced = result.messages[topics.TRACKS.name]
            with console.out.status("enriching tracks"):
                wait_for(
                    lambda: (
                        worker.topic_stats(topics.TRACKS.name).get("records_in", 0) >= produced
                        and worker.get("/pipeline/stats")["pending_joins"] == 0
                    ),
                    120,
                )
            step(
                f"enriched the {produced:,} track messages (joined with albums, artists, features)"
            )
            if duration > 0:
                with console.out.status("simulating plays"):
                    sent = run_async(
                        lambda stop: run_simulation(
                            settings,
                            rate=200,
                            users=500,
                            duration=duration,
                            seed=42,
                            stop=stop,
                            backfill=BACKFILL_SECONDS,
                            backfill_plays=BACKFILL_PLAYS,
                        )
                    )
                    wait_for(
                        lambda: (
                            _plays_counted(worker, sent)
                            and bool(worker.get(f"{POPULARITY_TOP}&n=1")["top"])
                        ),
                        60,
                    )
                step(
                    f"sent {sent:,} plays: {BACKFILL_PLAYS:,} played over the past "
                    f"{BACKFILL_SECONDS // 3600} hours, then {duration:g} s of live plays"
                )
                _popularity(worker)
            with console.out.status("waiting for the cluster model"):
                wait_for(lambda: _profiled(worker.get("/pipeline/stats")), 60)
            stats = worker.get("/pipeline/stats")
            step(
                f"cluster model version {stats['cluster_model']['version']} profiles "
                f"{stats['events'].get('profiled_tracks', 0):,} tracks"
            )
            _example_recommendation(worker)
            stats = worker.get("/pipeline/stats")
            console.worker_summary(stats, worker.url)
            if serve:
                console.out.print("serving the monitoring pages; Ctrl-C stops the demo")
                with contextlib.suppress(Interrupted):  # how serving ends; the demo goes on
                    run_async(lambda stop: stop.wait())
            # The sink writes what it holds when the worker stops: first let it read all.
            expected = {
                dataset: stats["topics"].get(topic, {}).get(count, 0)
                for dataset, topic, count in (
                    ("artists", topics.ARTISTS.name, "records_in"),
                    ("albums", topics.ALBUMS.name, "records_in"),
                    ("plays", topics.PLAYS.name, "records_in"),
                    ("popularity", topics.POPULARITY.name, "messages_out"),
                    ("tracks_enriched", topics.ENRICHED.name, "messages_out"),
                    ("clusters", topics.CLUSTERS.name, "messages_out"),
                )
            }
            with console.out.status("landing the lake"):
                wait_for(
                    lambda: all(
                        worker.get("/pipeline/stats")["lake"][dataset]["read"] >= n
                        for dataset, n in expected.items()
                    ),
                    60,
                )
        finally:
            worker.stop()
        storage = storage_for(worker.settings)
        counts = run_async(lambda _stop: _closing(storage, inventory(storage)))
        step("the worker stopped; its sink landed the lake")
        console.lake_summary(counts, storage.url)
        report = run_async(lambda _stop: write_report(worker.settings, report_dir))
        step(f"report: {report.index} ({len(report.pngs)} charts as PNG beside it)")
        _warehouse(worker.settings, storage, workdir / "lake.duckdb", step)
    console.out.print("demo finished; the embedded broker is stopped (its data was in memory)")


class _Steps:
    """The demo's numbered lines, each printed once its step is done."""

    def __init__(self) -> None:
        self.done = 0

    def __call__(self, line: str) -> None:
        self.done += 1
        console.out.print(f"{self.done}. {line}")


def _popularity(worker: WorkerProcess) -> None:
    """The last closed hourly window, which the backfilled plays closed."""
    top = worker.get(f"{POPULARITY_TOP}&n=1000")["top"]
    if not top:
        console.out.print("   no hourly popularity window has closed yet")
        return
    start, end = (dt.datetime.fromisoformat(top[0][k]) for k in ("window_start", "window_end"))
    status, artist = worker.get_status(f"/artists/{top[0]['entity_id']}")
    name = artist.get("name") if status == 200 else None
    console.out.print(
        f"   popularity: {len(top):,} artists played in the last closed hour "
        f"({start:%H:%M}-{end:%H:%M} UTC), most by {name or top[0]['entity_id']} "
        f"({top[0]['plays']:,} plays): {worker.url}{POPULARITY_TOP}&n=10"
    )


def _plays_counted(worker: WorkerProcess, sent: int) -> bool:
    return worker.topic_stats(topics.PLAYS.name).get("records_in", 0) >= sent


def _warehouse(settings: Settings, storage: Storage, catalog: Path, step: _Steps) -> None:
    """The local catalog over the lake, and two named queries run on it."""
    views = run_async(lambda _stop: _closing(storage, sync_local(settings, storage, str(catalog))))
    step(f"local catalog: {catalog} (DuckDB views {', '.join(views)})")
    for name, params, title in (
        ("top_albums", {"n": "5"}, "top albums of the last 5 years"),
        ("most_streamed_artists", {"n": "5"}, "most streamed artists"),
    ):
        console.out.print(f"   {title} (spotify-stream query {name}):")
        console.query_result(run_duckdb(settings, named(name).bind(params)), "table")


def _profiled(stats: dict) -> bool:
    """Every track is labelled, and the newest model version's profiles cover them all
    (the first version, published before the tracks that waited for it were labelled,
    does not)."""
    events = stats["events"]
    labelled = events.get("emitted", 0) - events.get("emitted_incomplete", 0)
    return (
        stats["cluster_model"] is not None
        and stats["unlabelled_tracks"] == 0
        and events.get("profiled_tracks", 0) >= labelled
    )


def _example_recommendation(worker: WorkerProcess) -> None:
    """The recommendations of the heaviest simulated listener (user 0 by construction)."""
    status, body = worker.get_status("/users/user-000000/recommendations?n=5")
    if status == 200:
        console.recommendations("user-000000", body)
    else:
        console.out.print(f"   no example recommendation: {body['error']}")
    console.out.print(
        f"   recommendations: {worker.url}/users/<user_id>/recommendations?n=10  "
        f"similar tracks: {worker.url}/tracks/<track_id>/similar?n=10"
    )


def _prepare(workdir: Path) -> None:
    """An empty ``workdir``, or one of an earlier demo, whose lake and state are cleared:
    the broker starts empty, so its offsets restart at 0 and the earlier run's objects
    and tables belong to another history."""
    stamp = workdir / STAMP
    if workdir.exists() and any(workdir.iterdir()) and not stamp.is_file():
        raise UsageError(
            f"{workdir} holds files the demo did not make; give the demo its own "
            "directory with --dir"
        )
    cleared = [p for p in (workdir / "lake", workdir / "state") if p.exists()]
    for path in cleared:
        shutil.rmtree(path)
    if cleared:
        console.out.print(f"   cleared the lake and state of an earlier demo run in {workdir}/")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        stamp.write_text("made by spotify-stream demo, which clears its lake and state\n")
    except OSError as exc:
        raise UserError(f"cannot write the demo's directory {workdir}: {exc.strerror}") from None


async def _closing(storage: Storage, work: Awaitable[T]) -> T:
    try:
        return await work
    finally:
        await storage.close()
