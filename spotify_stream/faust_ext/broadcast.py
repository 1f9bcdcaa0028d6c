"""Every partition of some topics, for every worker: the broadcast reader.

Faust's ``GlobalTable`` does not replicate across workers (faust-streaming
#283; on the embedded broker two workers each held about half the artists).
So each worker runs this reader outside the consumer group: it is assigned
every partition of its topics, reads them from the beginning, then tails them,
handing each message to ``apply``. ``caught_up`` is set once it has passed the
end offsets it saw at start; joins wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from spotify_stream.kafka import client_kwargs
from spotify_stream.settings import Settings

log = logging.getLogger(__name__)


class BroadcastReader(Service):
    def __init__(
        self,
        settings: Settings,
        topic_names: list[str],
        apply: Callable[[str, bytes | None], None],
        after_batch: Callable[[], Awaitable[None]],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.topic_names = topic_names
        self.apply = apply
        self.after_batch = after_batch
        self.caught_up = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._end: dict[TopicPartition, int] = {}
        self._behind: set[TopicPartition] = set()

    async def on_start(self) -> None:
        consumer = self._consumer = AIOKafkaConsumer(
            **client_kwargs(self.settings), group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(name, p)
            for name in self.topic_names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        self._end = await consumer.end_offsets(partitions)
        self._behind = {tp for tp in partitions if self._end[tp] > 0}
        if not self._behind:
            self.caught_up.set()

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @Service.task
    async def _read(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self.should_stop:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, messages in batches.items():
                for message in messages:
                    self.apply(tp.topic, message.value)
            if self._behind:
                # Position, not message offsets: the embedded broker reports the
                # end offset as the last batch's base offset + 1.
                for tp in list(self._behind):
                    if await consumer.position(tp) >= self._end[tp]:
                        self._behind.discard(tp)
                if not self._behind:
                    log.info("broadcast topics caught up: %s", ", ".join(self.topic_names))
                    self.caught_up.set()
            if self.caught_up.is_set():
                await self.after_batch()
