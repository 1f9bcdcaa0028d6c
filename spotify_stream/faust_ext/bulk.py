"""Bulk delivery: what one fetch returned, handed to an agent as one batch of raw records.

Faust makes every fetched record a ``Message``, an ``Event`` and a step of a
stream, waits on each hand-over to an agent's queue, and keeps every
acknowledged offset in a list it sorts at each commit: a per-message agent
doing nothing ran about 12,700 messages/s here, where aiokafka alone reads
about 100,000. For the topics of a ``BulkChannel`` the consumer takes each
fetch's records out of Faust's path before any of that, and hands them to the
channel's reader as one ``Fetch`` (aiokafka's ``ConsumerRecord``s, in offset
order per partition); the reader acknowledges a fetch by the next offset of
each of its partitions, which Faust commits on its interval with its own.

Everything else stays Faust's: the group and the assignment, pausing partitions
while tables recover, seeking to the committed offsets after a rebalance
(records fetched but not handed over are dropped then, as Faust drops its
own), the commit, and waiting before a revocation for what was handed over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import ConsumerRecord
from faust.types import TP, AppT
from mode import Service
from mode.utils.queues import FlowControlQueue

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Fetch:
    """The records one fetch returned for a channel's topics, and where each of their
    partitions resumes once they are handled."""

    records: list[ConsumerRecord] = field(default_factory=list)
    next_offsets: dict[TP, int] = field(default_factory=dict)


def channels(app: AppT) -> dict[str, BulkChannel]:
    """The app's bulk channels by topic."""
    return app.__dict__.setdefault("_bulk_channels", {})


class BulkChannel:
    """The records of some topics, a fetch at a time, for one reader (``BulkAgent``).

    Subscribing goes through Faust (the topics are added to its conductor), so
    Faust assigns, pauses and seeks their partitions as any other."""

    def __init__(self, app: AppT, *topics: str, maxsize: int = 2) -> None:
        self.app = app
        self.topics = topics
        # cleared when Faust suspends the flow for a rebalance, as its own agents' queues
        self.queue: FlowControlQueue[Fetch] = FlowControlQueue(
            maxsize, flow_control=app.flow_control, clear_on_resume=True
        )
        self.taken = 0  # fetches handed to the reader and not yet acknowledged
        self.closed = False  # the reader stopped: nothing more will be acknowledged
        app.topics.add(app.topic(*topics, key_serializer="raw", value_serializer="raw"))
        for topic in topics:
            channels(app)[topic] = self

    async def __aiter__(self) -> Any:
        while True:
            fetch = await self.queue.get()
            self.taken += 1
            yield fetch

    def acknowledge(self, fetch: Fetch) -> None:
        """``fetch`` is handled and what it made is durable: its offsets may be committed."""
        self.taken -= 1
        self.app.consumer.acknowledge_offsets(fetch.next_offsets)

    @property
    def busy(self) -> bool:
        return self.taken > 0 and not self.closed


class BulkAgent(Service):
    """Runs ``run`` over a channel; an exception stops the worker (whose successor
    replays what was not acknowledged) instead of leaving the partitions stuck."""

    def __init__(
        self, channel: BulkChannel, run: Callable[[BulkChannel], Awaitable[None]], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.channel = channel
        self._run_channel = run

    @property
    def label(self) -> str:
        return f"{type(self).__name__}({', '.join(self.channel.topics)})"

    @Service.task
    async def _run(self) -> None:
        try:
            await self._run_channel(self.channel)
        finally:
            self.channel.closed = True


class BulkDelivery:
    """What Faust's consumer needs for bulk channels (a mixin over
    ``faust.transport.consumer.Consumer``)."""

    app: AppT
    flow_active: bool
    suspend_flow: Any
    should_stop: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bulk_acked: dict[TP, int] = {}

    async def _wait_next_records(self, timeout: float) -> Any:
        records, active = await super()._wait_next_records(timeout)  # type: ignore[misc]
        by_topic = channels(self.app)
        if records and by_topic:
            await self._deliver(records, active, by_topic)
        return records, active

    async def _deliver(
        self, records: dict[Any, list[ConsumerRecord]], active: Any, by_topic: dict[str, Any]
    ) -> None:
        """Take the bulk topics' records out of ``records`` and hand each channel its
        fetch; stop (dropping the rest) as soon as Faust suspends the flow."""
        fetches: dict[BulkChannel, Fetch] = {}
        inbound = self.app.monitor.stream_inbound_time
        now = time.monotonic()
        for tp in [tp for tp in records if tp.topic in by_topic]:
            batch = records.pop(tp)
            if not batch or (active is not None and tp not in active):
                continue
            fetch = fetches.setdefault(by_topic[tp.topic], Fetch())
            fetch.records += batch
            fetch.next_offsets[tp] = batch[-1].offset + 1
            inbound[tp] = now  # Faust's "stream idle" check reads it
        for channel, fetch in fetches.items():
            if not self.flow_active:
                return
            put = asyncio.ensure_future(channel.queue.put(fetch))
            suspended = asyncio.ensure_future(self.suspend_flow.wait())
            await asyncio.wait({put, suspended}, return_when=asyncio.FIRST_COMPLETED)
            suspended.cancel()
            if not put.done():
                put.cancel()
                return

    def acknowledge_offsets(self, offsets: Mapping[TP, int]) -> None:
        acked = self._bulk_acked
        for tp, offset in offsets.items():
            if offset > acked.get(tp, -1):
                acked[tp] = offset

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        yield from super()._filter_tps_with_pending_acks(topics)  # type: ignore[misc]
        for tp in list(self._bulk_acked):
            if topics is None or tp in topics or tp.topic in topics:
                yield tp

    def _new_offset(self, tp: TP) -> int | None:
        offset = self._bulk_acked.pop(tp, None)
        return offset if offset is not None else super()._new_offset(tp)  # type: ignore[misc]

    async def wait_empty(self) -> None:
        """Before Faust's own wait (a revocation, a stop): the fetches handed over are
        acknowledged, or, past the session timeout, left to be read again."""
        deadline = time.monotonic() + self.app.conf.broker_session_timeout
        busy = [c for c in set(channels(self.app).values()) if c.busy]
        while busy and not self.should_stop:
            if time.monotonic() >= deadline:
                topics = sorted(t for c in busy for t in c.topics)
                log.warning("bulk: %s still handling a fetch; it will be read again", topics)
                break
            await asyncio.sleep(0.01)
            busy = [c for c in busy if c.busy]
        await super().wait_empty()  # type: ignore[misc]

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._bulk_acked.pop(tp, None)
        await super().on_partitions_revoked(revoked)  # type: ignore[misc]
