"""Faust's table recovery with the hand-over to the agents made gap-free.

When recovery completes, faust-streaming 0.15.3 resumes the stream partitions,
then seeks them to their committed offsets, then resumes flow control, which
clears every agent's queue. Two ways to lose messages follow, both seen as
skipped offsets on the embedded broker:

- messages fetched during the seek reach the queues and are cleared with them;
- aiokafka seeks only to committed offsets above 0, so a partition the group
  never committed keeps its fetch position, which after a rebalance lies past
  the messages cleared from the queues; they are never fetched again.

Here the stream partitions stay paused until they have been sought (to the
committed offset, or to the log start when there is none) and the queues have
been cleared; only then are they resumed.

Recovery reads each changelog to its last record, not to the end offset the
embedded broker reports, which can fall short (see ``record_end_offsets``); it
reports how many changelog records it had to read and how long it took
(``Stats.recovery``, in /pipeline/stats). And a rebalance first makes the
``PartitionedTable`` adapters let go of revoked partitions' stores, so Faust
can reopen them when they come back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import TopicPartition
from faust.tables import TableManager as FaustTableManager
from faust.tables.recovery import Recovery as FaustRecovery
from faust.types import TP

from spotify_stream.kafka import record_end_offsets, start_offsets

log = logging.getLogger(__name__)


async def seek_streams(app: Any, streams: set[TP]) -> None:
    """Seek each stream partition to its committed offset, or to the log start.

    The offsets come from a client of our own: the consumer thread's
    ``seek_to_committed`` now and then took over 20 s on the embedded broker.
    The seeks run on the consumer's thread (``seek_wait``): Faust's ``seek``
    runs aiokafka's on the caller's, and removing fetched records there while
    the consumer thread drains them crashed the worker with a ``KeyError`` in
    aiokafka's ``fetched_records``.
    """
    starts = await start_offsets(
        app.pipeline.settings, app.conf.id, (TopicPartition(*tp) for tp in streams)
    )
    log.info(
        "stream partitions resume at %s",
        ", ".join(f"{tp.topic}[{tp.partition}] {offset}" for tp, offset in sorted(starts.items())),
    )
    await app.consumer.seek_wait({TP(*tp): offset for tp, offset in starts.items()})


class Recovery(FaustRecovery):
    _began: float | None = None  # when the changelogs' start offsets were known

    async def _build_highwaters(
        self, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        await super()._build_highwaters(consumer, tps, destination, title)
        # Faust's highwater is the last offset: end - 1.
        reported = {TopicPartition(*tp): last + 1 for tp, last in destination.items()}
        ends = await record_end_offsets(self.app.pipeline.settings, reported)
        beyond = {tp: end for tp, end in ends.items() if end != reported[tp]}
        if beyond:
            self.log.info(
                "%s changelogs read to their last record, beyond the reported end: %s",
                title,
                ", ".join(
                    f"{tp.topic}[{tp.partition}] {reported[tp]}->{end}"
                    for tp, end in beyond.items()
                ),
            )
            for tp, end in beyond.items():
                destination[TP(*tp)] = end - 1  # a Counter: update() would add

    async def _build_offsets(
        self, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        await super()._build_offsets(consumer, tps, destination, title)
        if title == "active":
            self._began = time.monotonic()
            self.app.pipeline.stats.recovery = {
                "started_at": time.time(),
                "changelog_records": sum(self.active_remaining().values()),
            }

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """As Faust's, with the stream partitions resumed last; and a failing
        recovery callback raises out of recovery instead of being ignored."""
        app, consumer = self.app, self.app.consumer
        self.log.info("Restore complete!")
        if self._began is not None:
            self.app.pipeline.stats.recovery["seconds"] = round(time.monotonic() - self._began, 2)
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        await asyncio.gather(
            *(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
                for table in self.tables.values()
            )
        )
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        streams = {tp for tp in consumer.assignment() if not self._is_changelog_tp(tp)}
        if streams:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(seek_streams(app, streams), timeout=app.conf.broker_request_timeout)
        self.completed.set()
        app.flow_control.resume()  # clears the queues, which hold nothing of `streams`
        consumer.resume_partitions(streams)
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


class TableManager(FaustTableManager):
    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        for table in self.app.pipeline.tables:
            table.forget(tp.partition for tp in revoked if tp.topic == table.changelog)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
