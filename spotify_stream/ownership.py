"""Which pipeline a lake, and a worker's state, belong to.

A pipeline's history is its broker's topics. A fresh broker starts every
offset at 0 again, and the lake's object names and the worker's tables are
functions of offsets: written against two histories, a lake would mix them
(or rewrite one's objects with the other's rows) and a worker would join new
records with old state. So the pipeline has an identity, the first record of
``<app_id>-pipeline`` (one partition, kept forever), which the first worker
writes: a UUID with where and when it began. The lake keeps it in
``_pipeline.json`` at its root and a worker's state directory in
``pipeline.json``; a worker that finds another one stops with one line, and
writes nothing.

A lake or state directory without the file (empty, or written before the
file existed) is claimed by the first worker that uses it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from spotify_stream import topics
from spotify_stream.errors import UserError
from spotify_stream.kafka import read_topic, start_producer
from spotify_stream.settings import Settings
from spotify_stream.sink.storage import Storage, storage_for

log = logging.getLogger(__name__)

LAKE_FILE = "_pipeline.json"
STATE_FILE = "pipeline.json"


@dataclass(frozen=True)
class PipelineId:
    id: str
    app_id: str
    broker: str  # the bootstrap servers of the worker that began it
    created_at: str

    def dumps(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode() + b"\n"

    @classmethod
    def loads(cls, raw: bytes, where: str) -> PipelineId:
        try:
            return cls(**json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise UserError(f"{where} is not a pipeline identity file ({exc})") from None

    def describe(self) -> str:
        return f"pipeline {self.id} (app {self.app_id}, begun {self.created_at} on {self.broker})"


async def pipeline_id(settings: Settings) -> PipelineId:
    """The identity of the pipeline on ``settings``' broker, written by the first caller
    (of concurrent first callers, the first record in the topic wins for all)."""
    topic = topics.internal(settings.app_id, topics.PIPELINE)
    first = await _first(settings, topic)
    if first is not None:
        return first
    candidate = PipelineId(
        str(uuid.uuid4()),
        settings.app_id,
        ",".join(settings.bootstrap_servers),
        dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    producer = await start_producer(settings)
    try:
        await producer.send_and_wait(topic, candidate.dumps(), key=b"pipeline", partition=0)
    finally:
        await producer.stop()
    first = await _first(settings, topic)
    assert first is not None, f"{topic} is empty after a write"
    return first


async def _first(settings: Settings, topic: str) -> PipelineId | None:
    async for message in read_topic(settings, topic):
        return PipelineId.loads(message.value or b"", f"the first record of {topic}")
    return None


async def claim_lake(settings: Settings, pipeline: PipelineId) -> None:
    """Mark the lake of ``settings`` as ``pipeline``'s, or fail with one line when it
    belongs to another pipeline."""
    storage = storage_for(settings)
    try:
        await _claim_lake(storage, pipeline)
    finally:
        await storage.close()


async def _claim_lake(storage: Storage, pipeline: PipelineId) -> None:
    raw = await storage.get(LAKE_FILE)
    if raw is None:
        await storage.put(LAKE_FILE, pipeline.dumps())
        return
    owner = PipelineId.loads(raw, f"{storage.url}/{LAKE_FILE}")
    if owner.id != pipeline.id:
        raise UserError(
            f"the lake at {storage.url} belongs to {owner.describe()}, not to this broker's "
            f"{pipeline.describe()}; set SPOTIFY_STREAM_LAKE to a new lake, or move that one "
            "away to start it afresh"
        )


async def claim(settings: Settings) -> PipelineId:
    """This broker's pipeline, and the worker's state directory and (with its sink) lake
    claimed for it: one line when either belongs to another."""
    pipeline = await pipeline_id(settings)
    claim_state(settings.data_dir, pipeline)
    if settings.lake_sink:
        await claim_lake(settings, pipeline)
    return pipeline


def claim_state(data_dir: Path, pipeline: PipelineId) -> None:
    """Mark the worker state in ``data_dir`` as ``pipeline``'s, or fail with one line when
    it was built against another pipeline."""
    path = data_dir / STATE_FILE
    try:
        if not path.is_file():
            data_dir.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pipeline.dumps())
            return
        owner = PipelineId.loads(path.read_bytes(), str(path))
    except OSError as exc:
        raise UserError(f"cannot use the worker state directory {data_dir}: {exc}") from None
    if owner.id != pipeline.id:
        raise UserError(
            f"the worker state in {data_dir} was built against {owner.describe()}, not this "
            f"broker's {pipeline.describe()}; set SPOTIFY_STREAM_DATA_DIR to a new directory, "
            f"or delete {data_dir} to rebuild the state from the broker"
        )
