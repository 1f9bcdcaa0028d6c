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

import shutil
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from spotify_stream import console, topics
from spotify_stream.dashboard.report import write_report
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.errors import UserError
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.plays import run_simulation
from spotify_stream.ingest.producer import produce
from spotify_stream.runtime import run_async
from spotify_stream.settings import Settings
from spotify_stream.sink.objects import inventory
from spotify_stream.sink.storage import Storage, storage_for
from spotify_stream.warehouse.catalog import sync_local
from spotify_stream.warehouse.query import named, run_duckdb

T = TypeVar("T")
STAMP = ".spotify-stream-demo"


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
                # a small demo still gets its clusters (a quarter of its tracks at most)
                "cluster_warmup": max(10, min(settings.cluster_warmup, tracks // 4)),
            }
        )
        console.out.print(f"1. embedded broker on {broker.bootstrap}")
        written = generate(data_dir, tracks, seed=42, anomalies=0.01)
        console.out.print(
            f"2. generated {tracks:,} tracks in {data_dir}/ ({sum(written.values()):,} rows, 1% anomalies)"
        )
        worker = WorkerProcess(
            settings, Path(settings.data_dir), "demo-worker", web_port=settings.web_port
        )
        with console.out.status("3. starting a stream worker"):
            worker.start()
        console.out.print(f"3. stream worker running (log: {worker.log})")
        try:
            console.out.print("4. producing the catalog")
            with console.file_progress() as update:
                result = run_async(
                    lambda stop: produce(settings, str(data_dir), stop=stop, progress=update)
                )
            console.produce_summary(result)
            produced = result.messages[topics.TRACKS.name]
            with console.out.status("5. enriching tracks"):
                wait_for(
                    lambda: (
                        worker.topic_stats(topics.TRACKS.name).get("records_in", 0) >= produced
                        and worker.get("/pipeline/stats")["pending_joins"] == 0
                    ),
                    120,
                )
            if duration > 0:
                console.out.print(f"6. simulating plays for {duration:g} s")
                sent = run_async(
                    lambda stop: run_simulation(
                        settings, rate=200, users=500, duration=duration, seed=42, stop=stop
                    )
                )
                console.out.print(f"   sent {sent:,} plays to spotify.plays")
                wait_for(
                    lambda: worker.topic_stats(topics.PLAYS.name).get("records_in", 0) >= sent, 30
                )
            with console.out.status("   waiting for the cluster model"):
                wait_for(
                    lambda: (
                        (stats := worker.get("/pipeline/stats"))["cluster_model"]
                        and stats["unlabelled_tracks"] == 0
                    ),
                    60,
                )
            _example_recommendation(worker)
            stats = worker.get("/pipeline/stats")
            console.worker_summary(stats, worker.url)
            if serve:
                console.out.print("serving the monitoring pages; Ctrl-C stops the demo")
                run_async(lambda stop: stop.wait())
            # The sink writes what it holds when the worker stops: first let it read all.
            expected = {
                dataset: stats["topics"].get(topic, {}).get(count, 0)
                for dataset, topic, count in (
                    ("artists", topics.ARTISTS.name, "records_in"),
                    ("albums", topics.ALBUMS.name, "records_in"),
                    ("plays", topics.PLAYS.name, "records_in"),
                    ("tracks_enriched", topics.ENRICHED.name, "messages_out"),
                    ("clusters", topics.CLUSTERS.name, "messages_out"),
                )
            }
            with console.out.status("7. landing the lake"):
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
        console.lake_summary(counts, storage.url)
        console.report_summary(run_async(lambda _stop: write_report(worker.settings, report_dir)))
        _warehouse(worker.settings, storage, workdir / "lake.duckdb")
    console.out.print("demo finished; the embedded broker is stopped (its data was in memory)")


def _warehouse(settings: Settings, storage: Storage, catalog: Path) -> None:
    """The local catalog over the lake, and two named queries run on it."""
    views = run_async(lambda _stop: _closing(storage, sync_local(settings, storage, str(catalog))))
    console.out.print(f"8. local catalog: {catalog} (DuckDB views {', '.join(views)})")
    for name, params, title in (
        ("top_albums", {"n": "5"}, "top albums of the last 5 years"),
        ("most_streamed_artists", {"n": "5"}, "most streamed artists"),
    ):
        console.out.print(f"   {title} (spotify-stream query {name}):")
        console.query_result(run_duckdb(settings, named(name).bind(params)), "table")


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
        raise UserError(
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
