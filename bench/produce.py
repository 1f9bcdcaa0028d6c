"""Producer throughput: `spotify-stream produce` against a hand-written baseline.

The baseline is what one would write with the same libraries and no pipeline:
csv.reader over the same four files, each row encoded with fastavro (a record
of the file's columns as strings) and sent with AIOKafkaProducer.send, keyed by
the row's id. It does no cleaning, deduplication, joining or dead-lettering.

Runs alternate (baseline, producer, baseline, ...) on a fresh embedded broker
each, and the table shows medians; the ratio is producer / baseline rows/s.

    python -m bench produce [--tracks 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import statistics
import tempfile
import time
from pathlib import Path

import fastavro
from aiokafka import AIOKafkaProducer

from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.producer import produce
from spotify_stream.ingest.sources import ENTITY_FILES
from spotify_stream.settings import Settings

KEY_COLUMN = {"spotify-albums_data_2023.csv": "track_id"}


async def baseline(bootstrap: str, data: Path) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=1 << 20,
        enable_idempotence=False,
    )
    await producer.start()
    rows = 0
    try:
        for name in ENTITY_FILES:
            with open(data / name, newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh)
                header = next(reader)
                schema = fastavro.parse_schema(
                    {
                        "type": "record",
                        "name": "Row",
                        "fields": [{"name": f"c{i}", "type": "string"} for i in range(len(header))],
                    }
                )
                names = [f"c{i}" for i in range(len(header))]
                key_index = header.index(KEY_COLUMN.get(name, "id"))
                topic = f"baseline.{name.split('_')[1].split('-')[0]}"
                for row in reader:
                    if len(row) != len(header):
                        continue
                    buf = io.BytesIO()
                    fastavro.schemaless_writer(buf, schema, dict(zip(names, row, strict=True)))
                    await producer.send(topic, buf.getvalue(), key=row[key_index].encode())
                    rows += 1
        await producer.flush()
    finally:
        await producer.stop()
    return rows


async def ours(bootstrap: str, data: Path, state: Path) -> int:
    settings = Settings(
        broker=bootstrap, producer_idempotence="off", data_dir=state, _env_file=None
    )
    result = await produce(settings, str(data))
    return result.rows_read


def timed(fn) -> tuple[int, float]:
    with EmbeddedBroker() as broker:
        started = time.perf_counter()
        rows = asyncio.run(fn(broker.bootstrap))
        return rows, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        print(f"generating {args.tracks:,} tracks ...", flush=True)
        generate(data, args.tracks, seed=1, anomalies=0.01)
        runs: dict[str, list[tuple[int, float]]] = {"baseline": [], "produce": []}
        for i in range(args.repeat):
            runs["baseline"].append(timed(lambda b: baseline(b, data)))
            runs["produce"].append(timed(lambda b, i=i: ours(b, data, Path(tmp) / f"s{i}")))
            print(
                f"run {i + 1}/{args.repeat}: baseline {runs['baseline'][-1][1]:.2f} s, "
                f"produce {runs['produce'][-1][1]:.2f} s",
                flush=True,
            )
    rates = {k: statistics.median(r / s for r, s in v) for k, v in runs.items()}
    print()
    print(
        f"| method ({args.tracks:,} tracks, median of {args.repeat}) | rows | seconds | rows/s | ratio |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, label in (
        ("baseline", "aiokafka send + fastavro (no cleaning)"),
        ("produce", "spotify-stream produce"),
    ):
        rows = runs[name][0][0]
        seconds = statistics.median(s for _, s in runs[name])
        print(
            f"| {label} | {rows:,} | {seconds:.2f} | {rates[name]:,.0f} | "
            f"{rates[name] / rates['baseline']:.2f} |"
        )


if __name__ == "__main__":
    main()
