"""Kafka helpers on the real embedded broker."""

import logging

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from spotify_stream import topics
from spotify_stream.errors import BrokerUnavailable
from spotify_stream.kafka import (
    client_kwargs,
    ensure_topics,
    ensure_worker_topics,
    partition_plan,
    read_topic,
    record_end_offsets,
    start_offsets,
    start_producer,
)

pytestmark = pytest.mark.slow


async def test_read_topic_reads_every_batch_to_the_end(fresh_settings):
    """Many small batches per partition: all messages come back once, in order.

    (The embedded broker reports a partition's end offset as its last batch's base
    offset + 1; reading must not stop there.)
    """
    await ensure_topics(fresh_settings, ["t.batches"])
    producer = await start_producer(fresh_settings, max_batch_size=16_384)
    try:
        for i in range(3000):
            await producer.send("t.batches", f"{i:06d}".encode() * 20, key=str(i % 7).encode())
        await producer.flush()
    finally:
        await producer.stop()
    messages = [m async for m in read_topic(fresh_settings, "t.batches")]
    assert sorted(int(m.value[:6]) for m in messages) == list(range(3000))
    for partition in {m.partition for m in messages}:
        offsets = [m.offset for m in messages if m.partition == partition]
        assert offsets == list(range(len(offsets)))


async def produce_counted(settings, topic: str, counts: dict[int, int]) -> None:
    """``counts[p]`` records to partition p, many to a batch."""
    await ensure_topics(settings, [topic])
    producer = await start_producer(settings)
    try:
        for partition, count in counts.items():
            for i in range(count):
                await producer.send(topic, b"v%d" % i, key=b"k", partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def test_record_end_offsets_count_every_record(fresh_settings):
    # What Faust's table recovery reads up to. The embedded broker's own end offset
    # stops at the last batch's first record (Faust restored stale tables by it).
    counts = {0: 500, 1: 1, 2: 0, 3: 37}
    await produce_counted(fresh_settings, "t.ends", counts)
    consumer = AIOKafkaConsumer(**client_kwargs(fresh_settings), group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition("t.ends", p) for p in counts]
        reported = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    ends = await record_end_offsets(fresh_settings, reported)
    assert {tp.partition: end for tp, end in ends.items()} == counts


async def test_start_offsets_are_committed_or_log_start(fresh_settings):
    await produce_counted(fresh_settings, "t.starts", {0: 10, 1: 10, 2: 10, 3: 0})
    tps = [TopicPartition("t.starts", p) for p in range(4)]
    consumer = AIOKafkaConsumer(
        **client_kwargs(fresh_settings), group_id="g", enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.commit({tps[0]: 7, tps[1]: 0})
    finally:
        await consumer.stop()
    starts = await start_offsets(fresh_settings, "g", tps)
    assert {tp.partition: offset for tp, offset in starts.items()} == {0: 7, 1: 0, 2: 0, 3: 0}


async def test_existing_topic_keeps_its_partition_count(fresh_settings):
    await ensure_topics(fresh_settings.model_copy(update={"partitions": 2}), ["t.two"])
    counts = await ensure_topics(fresh_settings, ["t.two", "t.new"])
    assert counts == {"t.two": 2, "t.new": fresh_settings.partitions}


async def test_the_tracks_topic_sizes_the_worker_and_mismatches_are_named(fresh_settings):
    """Existing input topics of 6 partitions with settings of 4: every co-partitioned
    topic is made with 6; a changelog made earlier with 3 is named, with what to do."""
    app_id = fresh_settings.app_id
    six = fresh_settings.model_copy(update={"partitions": 6})
    changelog = topics.changelog(app_id, "features")
    await ensure_topics(six, [topics.TRACKS.name])
    await ensure_topics(fresh_settings.model_copy(update={"partitions": 3}), [changelog])
    partitions, counts = await ensure_worker_topics(fresh_settings)
    assert partitions == 6
    for name in topics.co_partitioned(app_id):
        assert counts[name] == (3 if name == changelog else 6), name
    for name, count in topics.single_partition(app_id).items():
        assert counts[name] == count
    assert partition_plan(app_id, counts, 4) == [
        "SPOTIFY_STREAM_PARTITIONS is 4 but spotify.tracks has 6 partitions: the worker uses 6",
        f"table changelog {changelog} has 3 partitions, spotify.tracks 6: the table's state "
        f"would not line up with the stream's partitions; delete {changelog} (the worker "
        "rebuilds the table) or give the topics equal counts",
    ]
    assert partition_plan(app_id, counts | {changelog: 6}, 6) == []


async def test_idempotence_auto_falls_back_on_the_embedded_broker(fresh_settings, caplog):
    settings = fresh_settings.model_copy(update={"producer_idempotence": "auto"})
    producer = await start_producer(settings)
    try:
        await ensure_topics(settings, ["t.auto"])
        metadata = await producer.send_and_wait("t.auto", b"v", key=b"k")
        assert metadata.offset == 0
    finally:
        await producer.stop()
    assert "does not support idempotent producers" in caplog.text
    # an expected fallback: one warning, no ERROR line (aiokafka logs one for the refusal)
    assert [r.levelname for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_idempotence_on_is_refused_with_a_clear_error(fresh_settings):
    settings = fresh_settings.model_copy(update={"producer_idempotence": "on"})
    with pytest.raises(BrokerUnavailable, match="PRODUCER_IDEMPOTENCE=off"):
        await start_producer(settings)


async def test_unreachable_broker_is_named_as_such_in_every_mode(fresh_settings):
    from spotify_stream.embedded import free_port

    for mode in ("auto", "on", "off"):
        settings = fresh_settings.model_copy(
            update={"producer_idempotence": mode, "broker": f"127.0.0.1:{free_port()}"}
        )
        with pytest.raises(BrokerUnavailable, match="cannot reach Kafka"):
            await start_producer(settings)
