"""The one commit protocol: an input offset is acknowledged only once everything made
from the records before it is durable. As Quix Streams' ``Checkpoint``, in order:

1. **The lake's objects are written** (the lake sink only): a partition's offset
   stops at the first record still in memory, buffered or being written
   (``safe_offset``). Object names are a function of the offsets, so a replay
   rewrites the same objects.
2. **Outputs are handed to the producer**: records, repartitions, table changelog
   writes, and the dead letters queued while handling (``Pipeline.ship``).
3. **The producer is flushed**: Kafka acknowledged every one of them. Each
   state store then records the changelog offset its data covers, so a restart
   replays only the changelog after it (``faust_ext.partitioned``).
4. **The input offsets are acknowledged**: to Faust for the agents (it commits
   acknowledged offsets on its interval), to Kafka for the sink's own group.

A crash anywhere replays from the last committed offset: at-least-once, with
outputs idempotent where it matters (``enriched`` emits only changed bytes,
popularity drops replayed contributions, lake objects keep their names).

``Checkpoints`` runs steps 2 to 4 for an agent, a batch at a time, while the
next batch is processed; ``durable`` is steps 2 and 3 alone, for a handler
that must know its outputs are in Kafka before it goes on (the trainer before
its model is assigned with, the enrichment before retries it asked for).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

#: Batches whose outputs are in flight while the next one is handled: waiting for
#: each round trip left the event loop idle most of the time.
IN_FLIGHT = 2


class Checkpoints:
    """Steps 2 to 4 for one stream: ``ship`` hands outputs over, ``flush`` waits
    until Kafka has them."""

    def __init__(
        self, ship: Callable[[], Awaitable[None]], flush: Callable[[], Awaitable[None]]
    ) -> None:
        self._ship = ship
        self._flush = flush
        self._in_flight: deque[asyncio.Future[None]] = deque()

    async def durable(self) -> None:
        """Steps 2 and 3: everything handed over so far is in Kafka."""
        await self._ship()
        await self._flush()

    async def acknowledge_after(self, acknowledge: Callable[[], None]) -> None:
        """Hand the batch's outputs over, and ``acknowledge`` its input once Kafka has
        them, in the background; waits while more than ``IN_FLIGHT`` are unconfirmed."""
        await self._ship()

        async def confirmed() -> None:
            await self._flush()
            acknowledge()

        self._in_flight.append(asyncio.ensure_future(confirmed()))
        while len(self._in_flight) > IN_FLIGHT or (self._in_flight and self._in_flight[0].done()):
            await self._in_flight.popleft()


def safe_offset(next_offset: int, held: Iterable[int | None]) -> int:
    """Step 1: the offset a partition may commit, given the first offsets of what is
    still held in memory for it (None: an empty buffer): nothing before it is only
    in memory."""
    return min((first for first in held if first is not None), default=next_offset)
