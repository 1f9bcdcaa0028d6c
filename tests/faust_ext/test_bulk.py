"""Bulk delivery in a Faust app of its own: every record once, in offset order, a fetch
per hand-over (not a record), and the offsets acknowledged are the group's commit."""

import asyncio

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from spotify_stream.faust_ext.bulk import BulkAgent, BulkChannel, Fetch
from spotify_stream.faust_ext.consumer import ConsumingApp
from spotify_stream.kafka import client_kwargs, ensure_topics, start_producer

TOPIC = "bulk-input"
PER_PARTITION = 3000


class BulkApp(ConsumingApp, faust.App):
    agents_of_bulk: list[BulkAgent]

    async def on_start(self) -> None:
        await super().on_start()
        for agent in self.agents_of_bulk:
            await self.add_runtime_dependency(agent)


async def committed(settings, group: str) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(group_id=group, **client_kwargs(settings))
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(TOPIC, p)) for p in range(2)}
    finally:
        await consumer.stop()


async def test_a_fetch_reaches_the_agent_whole_and_its_offsets_are_committed(
    fresh_settings, tmp_path
):
    settings = fresh_settings
    await ensure_topics(settings, [TOPIC], fixed={TOPIC: 2})
    producer = await start_producer(settings)
    try:
        for offset in range(PER_PARTITION):
            for partition in range(2):
                value = b"%d:%d" % (partition, offset)
                await producer.send(TOPIC, value, key=b"k", partition=partition)
        await producer.flush()
    finally:
        await producer.stop()

    app = BulkApp(
        "bulk-test",
        broker=f"kafka://{settings.bootstrap_servers[0]}",
        datadir=str(tmp_path / "faust"),
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.2,
        broker_session_timeout=10,
        broker_rebalance_timeout=10,
        web_enabled=False,
        autodiscover=False,
    )
    fetches: list[Fetch] = []
    done = asyncio.Event()

    async def run(channel: BulkChannel) -> None:
        async for fetch in channel:
            fetches.append(fetch)
            channel.acknowledge(fetch)
            if sum(len(f.records) for f in fetches) >= 2 * PER_PARTITION:
                done.set()

    app.agents_of_bulk = [BulkAgent(BulkChannel(app, TOPIC), run)]
    await app.start()
    try:
        await asyncio.wait_for(done.wait(), 60)
        for _ in range(100):  # Faust commits on its interval
            if await committed(settings, "bulk-test") == {0: PER_PARTITION, 1: PER_PARTITION}:
                break
            await asyncio.sleep(0.2)
    finally:
        await app.stop()

    for partition in range(2):
        records = [r for f in fetches for r in f.records if r.partition == partition]
        assert [r.offset for r in records] == list(range(PER_PARTITION))
        assert [r.value for r in records] == [
            b"%d:%d" % (partition, o) for o in range(PER_PARTITION)
        ]
    # whole fetches: many records of a partition in one hand-over, far fewer hand-overs
    most = max(sum(r.partition == 0 for r in f.records) for f in fetches)
    assert most > 100 and len(fetches) < PER_PARTITION / 10
    for fetch in fetches:  # each resumes after its last record per partition
        assert fetch.next_offsets == {
            tp: max(r.offset for r in fetch.records if r.partition == tp.partition) + 1
            for tp in fetch.next_offsets
        }
    assert await committed(settings, "bulk-test") == {0: PER_PARTITION, 1: PER_PARTITION}
