"""``spotify-stream sink``: the lake sink as a process of its own, like a Kafka Connect
task, beside workers started with ``SPOTIFY_STREAM_LAKE_SINK=false``.

The same consumer group (``<app_id>-lake``) and the same commits as the sink in
a worker, so either may run, and several sink processes share the partitions.
Its dead letters go through a producer of its own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from spotify_stream import topics
from spotify_stream.kafka import ensure_topics, start_producer
from spotify_stream.models import codec_for
from spotify_stream.settings import Settings
from spotify_stream.sink.consumer import LakeConsumer, lake_consumer
from spotify_stream.validation import Rules, rules_for

log = logging.getLogger(__name__)


class SinkOutputs:
    """``consumer.Outputs`` for a sink without a worker: dead letters through its own
    producer, the rules from the topics' partition counts."""

    def __init__(self, settings: Settings, producer: Any, partitions: dict[str, int]) -> None:
        self.settings = settings
        self.producer = producer
        self.partitions = partitions
        self._codec = codec_for(topics.DEADLETTER.record)
        self._queued: list[tuple[bytes, dict[str, Any]]] = []

    def queue_dead_letter(self, key: bytes, record: dict[str, Any]) -> None:
        self._queued.append((key, record))

    async def commit_point(self) -> None:
        queued, self._queued = self._queued, []
        for key, record in queued:
            await self.producer.send(topics.DEADLETTER.name, self._codec.encode(record), key=key)
        await self.producer.flush()

    def rules(self, topic: str, record: str, key_field: str) -> Rules:
        return rules_for(
            topic, record, key_field, self.partitions.get(topic), self.settings.max_clock_skew
        )


async def run_sink(settings: Settings, stop: asyncio.Event) -> LakeConsumer:
    """Land every dataset's topic until ``stop``; then write what is held and commit
    it. Returns the consumer (its sinks' stats); raises what crashed it (a bug)."""
    partitions = await ensure_topics(settings, [t.name for t in topics.ALL])
    producer = await start_producer(settings)
    outputs = SinkOutputs(settings, producer, partitions)
    lake = lake_consumer(settings, outputs)
    try:
        await lake.start()
        log.info("lake sink: landing %s in %s", ", ".join(lake.sinks), settings.lake)
        while not (stop.is_set() or lake.crashed):
            await asyncio.sleep(0.2)
        await lake.stop()
        await outputs.commit_point()
    finally:
        await producer.stop()
    if lake.crashed and lake.crash_reason is not None:
        raise lake.crash_reason
    return lake
