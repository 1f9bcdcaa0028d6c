"""``spotify-stream demo``: the whole pipeline on the embedded defaults.

Later stages (stream core, lake sink, warehouse, dashboards) extend this run.
"""

from __future__ import annotations

from pathlib import Path

from spotify_stream import console
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.plays import run_simulation
from spotify_stream.ingest.producer import produce
from spotify_stream.runtime import run_async
from spotify_stream.settings import Settings


def run_demo(settings: Settings, *, tracks: int, duration: float, data_dir: Path) -> None:
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
        console.out.print("3. producing the catalog")
        with console.file_progress() as update:
            result = run_async(
                lambda stop: produce(settings, str(data_dir), stop=stop, progress=update)
            )
        console.produce_summary(result)
        if duration > 0:
            console.out.print(f"4. simulating plays for {duration:g} s")
            sent = run_async(
                lambda stop: run_simulation(
                    settings, rate=200, users=500, duration=duration, seed=42, stop=stop
                )
            )
            console.out.print(f"   sent {sent:,} plays to spotify.plays")
    console.out.print("demo finished; the embedded broker is stopped (its data was in memory)")
