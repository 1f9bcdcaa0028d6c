import asyncio
import random

import pytest
from aiokafka.partitioner import murmur2

from spotify_stream import topics
from spotify_stream.ingest.producer import produce
from spotify_stream.kafka import partition_for
from tests.conftest import consume_all


def test_partitioner_matches_kafkas_default():
    rng = random.Random(1)
    keys = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))) for _ in range(2000)]
    for key in keys:
        for partitions in (1, 3, 8, 12):
            assert partition_for(key, partitions) == (murmur2(key) & 0x7FFFFFFF) % partitions


@pytest.mark.slow
async def test_interrupt_sends_what_was_read_and_reports_it(fresh_settings, generated):
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.5, stop.set)
    result = await produce(fresh_settings, str(generated), rate=2000, stop=stop)
    assert result.interrupted
    assert 0 < result.rows_read < 15_000
    for stats in result.files.values():
        assert stats.read == stats.produced + sum(stats.rejected.values())
    for topic in (topics.ALBUMS, topics.ARTISTS, topics.TRACKS, topics.DEADLETTER):
        assert len(await consume_all(fresh_settings, topic.name)) == result.messages[topic.name]
    assert sum(result.messages.values()) > 0
