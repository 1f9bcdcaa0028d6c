"""Poison messages go to the dead-letter topic with their coordinates; the worker carries on."""

from __future__ import annotations

import asyncio

import pytest

from spotify_stream import topics
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.kafka import PartitionedSender, ensure_topics, partition_for, start_producer
from spotify_stream.models import codec_for
from tests.agents.test_enrichment_e2e import enriched_by_key
from tests.agents.test_late_dimensions import album, artist, features, track
from tests.conftest import consume_all, send_records

pytestmark = pytest.mark.slow


async def send_raw(settings, messages: list[tuple[str, bytes, bytes, int | None]]) -> dict:
    """Send raw messages; returns (topic, key) -> (partition, offset) of each."""
    partitions = await ensure_topics(settings, [t.name for t in topics.ALL])
    producer = await start_producer(settings)
    try:
        sender = PartitionedSender(producer, partitions)
        placed = {}
        for topic, key, value, partition in messages:
            await sender.send(topic, key, value, partition=partition)
            await sender.flush()
            p = partition if partition is not None else partition_for(key, partitions[topic])
            placed[(topic, key)] = (p, sender.last_offsets[(topic, p)])
        return placed
    finally:
        await producer.stop()


def test_poison_messages_are_dead_lettered_and_processing_goes_on(fresh_settings, tmp_path):
    settings = fresh_settings
    asyncio.run(
        send_records(
            settings,
            [
                (topics.ARTISTS, artist("a1", "Ann")),
                (topics.ALBUMS, album("al1", "First")),
                (topics.AUDIO_FEATURES, features("track1")),
            ],
        )
    )
    good = track(1, "al1", "a1")
    wrong_partition = (partition_for(b"track1", settings.partitions) + 1) % settings.partitions
    play = codec_for("Play").encode(
        {
            "user_id": "u",
            "track_id": "track1",
            "played_at": 0,
            "ms_played": 1,
            "skipped": False,
            "session_id": "s",
        }
    )
    placed = asyncio.run(
        send_raw(
            settings,
            [
                (topics.TRACKS.name, b"garbage", b"\x00not avro at all", None),
                (topics.TRACKS.name, b"a-play", play, None),
                (
                    topics.TRACKS.name,
                    b"misrouted",
                    codec_for("Track").encode(good),
                    wrong_partition,
                ),
                (topics.ARTISTS.name, b"bad-artist", b"\xc3\x01" + b"\xff" * 8 + b"body", None),
                (topics.TRACKS.name, b"track1", codec_for("Track").encode(good), None),
            ],
        )
    )
    with WorkerProcess(settings, tmp_path) as worker:
        assert wait_for(lambda: "track1" in enriched_by_key(settings), 30)
        letters = wait_for(
            lambda: len(d := asyncio.run(consume_all(settings, topics.DEADLETTER.name))) >= 4 and d,
            30,
        )
        stats = worker.get("/pipeline/stats")

    decoded = [codec_for("DeadLetter").decode(m.value) for m in letters]
    got = {(d["source"], d["partition"], d["offset"]): d["reason"] for d in decoded}
    assert got == {
        (topics.TRACKS.name, *placed[(topics.TRACKS.name, b"garbage")]): "undecodable",
        (topics.TRACKS.name, *placed[(topics.TRACKS.name, b"a-play")]): "wrong_record_type",
        (topics.TRACKS.name, *placed[(topics.TRACKS.name, b"misrouted")]): "misrouted",
        (topics.ARTISTS.name, *placed[(topics.ARTISTS.name, b"bad-artist")]): "undecodable",
    }
    garbage = next(
        d for d in decoded if d["reason"] == "undecodable" and d["source"] == topics.TRACKS.name
    )
    assert garbage["raw"] == b"\x00not avro at all" and garbage["raw_size"] == 16
    assert {m.key.decode() for m in letters} == {f"{t}:{p}:{o}" for t, p, o in got}
    assert stats["dead_letters"] == {"undecodable": 2, "wrong_record_type": 1, "misrouted": 1}
    record = enriched_by_key(settings)["track1"][0]
    assert record["complete"] and record["album_name"] == "First"
