"""Shared fixtures: a real embedded broker, a real moto S3 server, generated data."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spotify_stream import topics
from spotify_stream.embedded import EmbeddedBroker, free_port
from spotify_stream.ingest.generator import generate
from spotify_stream.kafka import PartitionedSender, ensure_topics, read_topic, start_producer
from spotify_stream.models import codec_for
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
