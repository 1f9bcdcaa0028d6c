"""The commit protocol's order: a batch is acknowledged only after the producer's flush
that covers its outputs, and at most two batches wait unconfirmed while the next is
handled; the lake sink's offset stops at the first record held in memory."""

from __future__ import annotations

import asyncio

from spotify_stream.commits import IN_FLIGHT, Checkpoints, safe_offset


async def test_a_batch_is_acknowledged_after_kafka_has_its_outputs():
    events: list[str] = []
    kafka = asyncio.Event()  # set: the producer's flush returns

    async def ship() -> None:
        events.append("ship")

    async def flush() -> None:
        await kafka.wait()
        events.append("flushed")

    checkpoints = Checkpoints(ship, flush)
    acknowledged: list[int] = []

    def acknowledge(batch: int) -> None:
        acknowledged.append(batch)

    for batch in range(IN_FLIGHT):  # handed over; none confirmed, none blocks
        await asyncio.wait_for(
            checkpoints.acknowledge_after(lambda b=batch: acknowledge(b)), timeout=1
        )
    assert acknowledged == [] and events == ["ship"] * IN_FLIGHT
    blocked = asyncio.ensure_future(checkpoints.acknowledge_after(lambda: acknowledge(IN_FLIGHT)))
    await asyncio.sleep(0.05)
    assert not blocked.done()  # a third unconfirmed batch waits for the first
    kafka.set()
    await asyncio.wait_for(blocked, timeout=1)
    assert acknowledged[:1] == [0] and events.index("flushed") > events.index("ship")
    await checkpoints.durable()
    for _ in range(100):  # the others confirm in the background
        if len(acknowledged) == IN_FLIGHT + 1:
            break
        await asyncio.sleep(0.01)
    assert sorted(acknowledged) == list(range(IN_FLIGHT + 1))


def test_the_sink_commits_up_to_the_first_record_held():
    assert safe_offset(100, [None]) == 100  # nothing held: all read is in the lake
    assert safe_offset(100, [90, None, 95]) == 90
    assert safe_offset(100, []) == 100
