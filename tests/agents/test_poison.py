"""Poison messages go to the dead-letter topic with their coordinates; the worker carries on."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections import Counter

import pytest

from spotify_stream import topics
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.kafka import PartitionedSender, ensure_topics, partition_for, start_producer
from spotify_stream.models import codec_for
from spotify_stream.models.codec import millis
from spotify_stream.tables.sketch import listener_hash
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


def forwarded_plays(settings, topic: str) -> list[tuple]:
    """The plays in ``plays-by-track`` as (track_id, played_at, listener hash, skipped),
    each checked to be in its track's partition."""
    out = []
    for message in asyncio.run(consume_all(settings, topic)):
        _, rows = json.loads(message.value)
        for _, track_id, played_at, listener, skipped in rows:
            assert message.partition == partition_for(track_id.encode(), settings.partitions)
            out.append((track_id, played_at, listener, skipped))
    return out


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


def test_each_poison_kind_gets_one_letter_and_the_lake_holds_only_what_agents_accept(
    fresh_settings, tmp_path
):
    """Every kind of poison between valid plays and artists: one dead letter each (the
    bad item of a Batch alone), every valid record processed and landed, no lake row
    the agents rejected."""
    from spotify_stream.models.codec import encode_batch
    from tests.lake import lake_rows, multiset
    from tests.sink.test_parquet import plays

    settings = fresh_settings.model_copy(
        update={"lake": f"file://{tmp_path}/lake", "flush_seconds": 0.5}
    )
    n = settings.partitions
    play_codec, artist_codec = codec_for("Play"), codec_for("Artist")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    valid_plays = [{**p, "user_id": f"user{i}", "played_at": now} for i, p in enumerate(plays(40))]
    valid_artists = [artist(f"a{i}", f"Artist {i}") for i in range(12)]

    def home(key: str) -> int:
        return partition_for(key.encode(), n)

    def in_partition(records, key_field, partition):
        return [r for r in records if home(r[key_field]) == partition]

    # a Batch per topic with one bad item, its good items all of the Batch's partition
    p0 = home(valid_plays[0]["user_id"])
    batch_plays = in_partition(valid_plays, "user_id", p0)[:3]
    a0 = home(valid_artists[0]["artist_id"])
    batch_artists = in_partition(valid_artists, "artist_id", a0)[:2]
    other_plays = [p for p in valid_plays if p not in batch_plays]
    accepted = [p for p in valid_plays if p is not batch_plays[1]]  # sent only cut short
    other_artists = [a for a in valid_artists if a not in batch_artists]
    misrouted_play = {**valid_plays[0], "user_id": "stray"}
    misrouted_artist = artist("stray", "Stray")
    PLAYS, ARTISTS = topics.PLAYS.name, topics.ARTISTS.name
    poison = {  # (topic, key) -> (value, partition, expected reason)
        (PLAYS, b"random"): (bytes(range(7, 90)), None, "undecodable"),
        (PLAYS, b"truncated"): (play_codec.encode(valid_plays[1])[:-4], None, "undecodable"),
        (PLAYS, b"wrong-schema"): (
            artist_codec.encode(valid_artists[0]),
            None,
            "wrong_record_type",
        ),
        (PLAYS, b"empty"): (b"", None, "undecodable"),
        (PLAYS, b"tombstone"): (None, None, "undecodable"),
        (PLAYS, b"missing-id"): (
            play_codec.encode({**valid_plays[2], "user_id": ""}),
            None,
            "missing_id",
        ),
        (PLAYS, b"stray"): (
            play_codec.encode(misrouted_play),
            (home("stray") + 1) % n,
            "misrouted",
        ),
        (PLAYS, b"ahead"): (
            play_codec.encode({**valid_plays[3], "played_at": now + dt.timedelta(days=1)}),
            home(valid_plays[3]["user_id"]),
            "future_event_time",
        ),
        (PLAYS, b"batch"): (
            encode_batch(
                [
                    play_codec.encode(batch_plays[0]),
                    play_codec.encode(batch_plays[1])[:-3],
                    play_codec.encode(batch_plays[2]),
                ]
            ),
            p0,
            "undecodable",
        ),
        (ARTISTS, b"missing-id"): (artist_codec.encode(artist("", "Nobody")), None, "missing_id"),
        (ARTISTS, b"stray"): (
            artist_codec.encode(misrouted_artist),
            (home("stray") + 1) % n,
            "misrouted",
        ),
        (ARTISTS, b"batch"): (
            encode_batch(
                [
                    artist_codec.encode(batch_artists[0]),
                    b"\x02",
                    artist_codec.encode(batch_artists[1]),
                ]
            ),
            a0,
            "undecodable",
        ),
    }
    messages = []
    good_plays, good_artists = iter(other_plays), iter(other_artists)
    for (topic, key), (value, partition, _) in poison.items():
        messages.append((topic, key, value, partition))
        for _ in range(2):  # valid records between the poison
            p, a = next(good_plays, None), next(good_artists, None)
            if p:
                messages.append((PLAYS, p["user_id"].encode(), play_codec.encode(p), None))
            if a:
                messages.append((ARTISTS, a["artist_id"].encode(), artist_codec.encode(a), None))
    messages += [(PLAYS, p["user_id"].encode(), play_codec.encode(p), None) for p in good_plays]
    messages += [
        (ARTISTS, a["artist_id"].encode(), artist_codec.encode(a), None) for a in good_artists
    ]
    placed = asyncio.run(send_raw(settings, messages))
    with WorkerProcess(settings, tmp_path) as worker:

        def landed() -> bool:
            return len(lake_rows(settings, "plays")) >= len(accepted) and len(
                lake_rows(settings, "artists")
            ) >= len(valid_artists)

        assert wait_for(landed, 60), worker.tail()
        letters = wait_for(
            lambda: (
                len(d := asyncio.run(consume_all(settings, topics.DEADLETTER.name))) >= len(poison)
                and d
            ),
            30,
        )
        by_track = topics.internal(settings.app_id, topics.PLAYS_BY_TRACK)
        forwarded = wait_for(
            lambda: len(f := forwarded_plays(settings, by_track)) >= len(accepted) and f, 30
        )
        known = {
            a["artist_id"]: worker.get_status(f"/artists/{a['artist_id']}")[0]
            for a in valid_artists
        }
        time.sleep(1.5)  # a flush window: a row the agents rejected would land by now
        lake_plays, lake_artists = lake_rows(settings, "plays"), lake_rows(settings, "artists")
        stats = worker.get("/pipeline/stats")

    decoded = [codec_for("DeadLetter").decode(m.value) for m in letters]
    got = {(d["source"], d["partition"], d["offset"]): d["reason"] for d in decoded}
    assert got == {
        (topic, *placed[(topic, key)]): reason for (topic, key), (_, _, reason) in poison.items()
    }
    assert len(decoded) == len(poison)
    # the bad item of a Batch is its letter's raw bytes, not the whole Batch
    items = [
        d for d in decoded if d["offset"] == placed[(PLAYS, b"batch")][1] and d["source"] == PLAYS
    ]
    assert items[0]["raw"] == play_codec.encode(batch_plays[1])[:-3]
    # every valid play was processed (forwarded by track) and landed; nothing else landed
    assert Counter(forwarded) == Counter(
        (p["track_id"], millis(p["played_at"]), listener_hash(p["user_id"]), p["skipped"])
        for p in accepted
    )
    assert multiset(lake_plays) == multiset(accepted)
    assert multiset(lake_artists) == multiset(valid_artists)
    assert known == dict.fromkeys(known, 200)
    assert stats["lake"]["plays"]["rejected"] == stats["lake"]["artists"]["rejected"] == 0
