"""Faust's aiokafka consumer, made to fetch only what it will deliver, and to deliver
the topics of bulk channels a fetch at a time (``bulk``).

Faust asks aiokafka for the records of its *active* partitions, passing its own
set of them, which it changes as partitions are paused and resumed. aiokafka
reads an empty set as "every partition": when recovery paused the last active
changelog partition while a fetch was waiting, aiokafka handed over records of
paused stream and standby partitions, moved their positions past them, and
Faust dropped them as not active. Here aiokafka gets a copy of the set taken
when the fetch starts, and no fetch starts with none.

Seen in the failover test: a worker that took a partition over began it at
offset 13, not 0, and those tracks were never joined.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer

from spotify_stream.faust_ext.bulk import BulkDelivery


class ConsumerThread(AIOKafkaConsumerThread):
    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        active = frozenset(active_partitions or ())
        if not active:
            return {}
        return await super()._fetch_records(consumer, active, timeout, max_records)


class Consumer(BulkDelivery, FaustConsumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class ConsumingApp:
    """A mixin for ``faust.App``: the app consumes through ``Consumer``."""

    def _new_consumer(self: Any) -> Consumer:
        return Consumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.loop,
        )
