"""Shared fixtures: a real embedded broker, a real moto S3 server, generated data."""

from __future__ import annotations

import asyncio
import csv
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spotify_stream import topics
from spotify_stream.embedded import EmbeddedBroker, free_port
from spotify_stream.ingest.generator import ANOMALY_MANIFEST, generate
from spotify_stream.ingest.producer import produce
from spotify_stream.ingest.sources import ALBUMS_FILE, FEATURES_FILE, TRACKS_FILE
from spotify_stream.kafka import PartitionedSender, ensure_topics, read_topic, start_producer
from spotify_stream.models import codec_for
from spotify_stream.models.codec import record_name
from spotify_stream.settings import Settings
from spotify_stream.topics import ALL, Topic

GENERATED_TRACKS = 5000


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture
def fresh_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings on a broker of this test's own, so topic contents are this test's alone,
    with a lake of its own (a lake belongs to one broker's pipeline)."""
    with EmbeddedBroker() as embedded:
        yield Settings(
            broker=f"kafka://{embedded.bootstrap}",
            data_dir=tmp_path / "state",
            lake=f"file://{tmp_path}/lake",
            producer_idempotence="off",
            partitions=4,
            _env_file=None,
        )


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5,000 tracks with anomalies: the data set the end-to-end tests share (read-only)."""
    out = tmp_path_factory.mktemp("generated")
    generate(out, GENERATED_TRACKS, seed=7, anomalies=0.02)
    return out


def csv_rows(lines: list[bytes]) -> Iterator[tuple[list[str], list[bytes]]]:
    """Each row of a CSV file as the csv module reads it (a field may hold a line break),
    with its lines as written."""
    read = 0

    def counted() -> Iterator[str]:
        nonlocal read
        for line in lines:
            read += 1
            yield line.decode(errors="replace")

    reader = csv.reader(counted())
    while True:
        start = read
        row = next(reader, None)
        if row is None:
            return
        yield row, lines[start:read]


#: The column of each catalog file that names the track a row belongs to.
TRACK_COLUMN = {TRACKS_FILE: "id", ALBUMS_FILE: "track_id", FEATURES_FILE: "id"}


@pytest.fixture(scope="session")
def generated_halves(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """``generated`` cut in two: the rows of the first half of its tracks (in every file),
    then the rest. A track's rows stay together, as the producer assembles a track
    from several files; rows keep their order and bytes, and the files their times."""
    halves = [tmp_path_factory.mktemp("first-half"), tmp_path_factory.mktemp("second-half")]
    tracks = [row for row, _ in csv_rows((generated / TRACKS_FILE).read_bytes().splitlines(True))]
    first = {row[0] for row in tracks[1 : 1 + (len(tracks) - 1) // 2] if row}
    for path in generated.glob("*.csv"):
        if path.name == ANOMALY_MANIFEST:
            continue
        (header, head), *rows = csv_rows(path.read_bytes().splitlines(keepends=True))
        column = [h.lstrip("\ufeff") for h in header].index(TRACK_COLUMN.get(path.name, "id"))
        parts: list[list[bytes]] = [list(head), list(head)]
        for n, (row, lines) in enumerate(rows):
            if path.name in TRACK_COLUMN:  # by track; a row without one with the first half
                second = len(row) > column and row[column] and row[column] not in first
            else:  # artists: by position
                second = n >= len(rows) // 2
            parts[second] += lines
        for half, part in zip(halves, parts, strict=True):
            (half / path.name).write_bytes(b"".join(part))
            shutil.copystat(path, half / path.name)  # the producer stamps albums with it
    return halves


#: Records per ``Batch`` message in the half produced in the bulk form.
BATCH_RECORDS = 100


def produce_both_forms(settings: Settings, halves: list[Path], rate: float | None = None) -> None:
    """The first half as one record per message, the second as ``Batch`` messages: every
    input topic of the catalog holds both forms the worker reads."""
    asyncio.run(produce(settings, str(halves[0]), rate=rate))
    batched = settings.model_copy(update={"input_batch_records": BATCH_RECORDS})
    asyncio.run(produce(batched, str(halves[1]), rate=rate))


def input_forms(settings: Settings, topic: Topic) -> dict[str, int]:
    """How many messages of ``topic`` carry one record and how many a ``Batch``."""
    messages = asyncio.run(consume_all(settings, topic.name))
    batches = sum(record_name(m.value) == "Batch" for m in messages)
    return {"one": len(messages) - batches, "Batch": batches}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, spoken to over real HTTP."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials through the standard chain (environment), as in production."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


async def consume_all(settings: Settings, topic: str) -> list:
    """Every message of ``topic`` from the beginning up to the current end offsets."""
    return [message async for message in read_topic(settings, topic)]


def cli_command() -> list[str]:
    return [sys.executable, "-m", "spotify_stream"]


async def send_records(settings: Settings, records: list[tuple[Topic, dict]]) -> None:
    """Produce ``records`` one message each, keyed like the producer keys them."""
    partitions = await ensure_topics(settings, [t.name for t in ALL])
    producer = await start_producer(settings)
    try:
        sender = PartitionedSender(producer, partitions)
        for topic, record in records:
            await sender.send(
                topic.name, record[topic.key].encode(), codec_for(topic.record).encode(record)
            )
        await sender.flush()
    finally:
        await producer.stop()


def plays_drained(worker, sent: int) -> bool:
    """Every play sent read by ``worker``, through both repartitions, and the windows it
    closed landed in the lake."""
    stats = worker.get("/pipeline/stats")
    if not worker.plays_through(sent, stats):
        return False
    out = stats["topics"].get(topics.POPULARITY.name, {}).get("messages_out", 0)
    return stats["lake"]["popularity"]["read"] >= out


def pipeline_settings(broker: EmbeddedBroker, workdir: Path, **update) -> Settings:
    """Settings of a worker on ``broker`` with its state and a file lake in ``workdir``,
    flushing every second."""
    base = {
        "broker": f"kafka://{broker.bootstrap}",
        "data_dir": workdir / "state",
        "producer_idempotence": "off",
        "partitions": 4,
        "lake": f"file://{workdir}/lake",
        "flush_seconds": 1,
    }
    return Settings(_env_file=None, **(base | update))
