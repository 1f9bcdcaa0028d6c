"""``spotify-stream demo``: the whole pipeline on the embedded defaults.

Broker, generated catalog, a stream worker, the producer and simulated plays;
it ends with what the worker did and where its monitoring pages are.
"""

from __future__ import annotations

from pathlib import Path

from spotify_stream import console, topics
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.plays import run_simulation
from spotify_stream.ingest.producer import produce
from spotify_stream.runtime import run_async
from spotify_stream.settings import Settings


def run_demo(
    settings: Settings, *, tracks: int, duration: float, data_dir: Path, serve: bool = False
) -> None:
    console.out.rule("spotify-stream demo")
    with EmbeddedBroker() as broker:
        settings = settings.model_copy(
            update={"broker": f"kafka://{broker.bootstrap}", "producer_idempotence": "off"}
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
            console.worker_summary(worker.get("/pipeline/stats"), worker.url)
            if serve:
                console.out.print("serving the monitoring pages; Ctrl-C stops the demo")
                run_async(lambda stop: stop.wait())
        finally:
            worker.stop()
    console.out.print("demo finished; the embedded broker is stopped (its data was in memory)")
