"""The windows agent on contribution rows cut into messages in different ways, replayed,
and copied by an upstream replay: each play counts once, against a brute-force count."""

from __future__ import annotations

import json
import random
from collections import defaultdict

from aiokafka.structs import ConsumerRecord

from spotify_stream import topics
from spotify_stream.agents.popularity import PopularityWindows
from spotify_stream.app import create_app
from spotify_stream.tables import sketch
from spotify_stream.tables.windows import Aggregate, window_specs

HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
ENTITIES = ["track:t1", "track:t2", "artist:a1", "genre:pop"]


def rows_of_plays(source: int, count: int, rng: random.Random) -> list[list]:
    """Contribution rows of ``count`` plays of one ``spotify.plays`` partition, in order:
    each play counts for two or three entities, within two hours."""
    rows = []
    for seq in range(count):
        played_at = T0 + rng.randrange(2 * HOUR)
        listener = sketch.listener_hash(f"u{rng.randrange(30)}")
        skipped = rng.random() < 0.3
        for j, entity in enumerate(rng.sample(ENTITIES, rng.choice((2, 3)))):
            popularity = None if entity.startswith("genre") else rng.randrange(100)
            rows.append([entity, played_at, listener, skipped, popularity, source, seq << 16 | j])
    return rows


def cut(rows: list[list], rng: random.Random) -> list[list[list]]:
    """``rows`` in consecutive messages of random lengths."""
    out, at = [], 0
    while at < len(rows):
        length = rng.randrange(1, 40)
        out.append(rows[at : at + length])
        at += length
    return out


class Feed:
    """Messages of the contributions topic's partition 0, offsets in order."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.offset = 0

    def message(self, value: bytes) -> ConsumerRecord:
        record = ConsumerRecord(
            self.topic, 0, self.offset, T0, 0, b"0", value, None, 1, len(value), ()
        )
        self.offset += 1
        return record

    def rows(self, attributed: int, rows: list[list]) -> ConsumerRecord:
        return self.message(json.dumps([attributed, rows]).encode())


async def test_rows_replayed_in_other_cuts_and_copied_upstream_count_once(fresh_settings):
    rng = random.Random(7)
    settings = fresh_settings.model_copy(update={"window_grace": 24 * 3600})  # none closes
    app = create_app(settings)
    pipeline = app.pipeline
    await pipeline.start()
    try:
        panes = pipeline.tables[topics.TABLES.index("popularity-panes")]
        windows = PopularityWindows(pipeline, panes, window_specs(settings))
        feed = Feed(pipeline.internal(topics.CONTRIBUTIONS))
        # two attribution partitions, each carrying plays of two spotify.plays partitions
        paths = {
            (attributed, source): rows_of_plays(source, 60, rng)
            for attributed in (0, 1)
            for source in (2, 5)
        }
        cuts = []  # per path, its messages' rows in order
        for (attributed, _), rows in paths.items():
            half = len(rows) // 2
            # the rows up to a crash, then an attribution replay from an earlier point,
            # cut otherwise, with the rest; then copies sent again by a plays-agent replay
            replay_from = rng.randrange(half)
            parts = cut(rows[:half], rng) + cut(rows[replay_from:], rng)
            parts += cut(rows[: len(rows) // 3], rng)
            cuts.append([(attributed, part) for part in parts])
        delivered = []  # the paths interleaved, each in its own order
        while any(cuts):
            path = rng.choice([c for c in cuts if c])
            delivered.append(feed.rows(*path.pop(0)))
        await windows.handle(delivered[:50])
        await windows.handle(delivered[50:])
        await windows.handle(delivered[20:70])  # the windows' own replay: offsets it holds
        # a malformed message is a dead letter, not a crash, and changes nothing
        bad = feed.message(json.dumps([0, [["track:t1", "noon", 1, False, 1, 2, 1 << 40]]]))
        await windows.handle([bad])

        expected = defaultdict(list)
        for rows in paths.values():
            for entity, played_at, listener, skipped, popularity, _, _ in rows:
                pane = played_at - played_at % HOUR
                expected[entity, pane].append((listener, skipped, popularity))
        got = {
            slot: Aggregate.loads(panes.get(0, f"{slot[0]}|{slot[1]}".encode()))
            for slot in expected
        }
        assert got == {slot: Aggregate.of(plays) for slot, plays in expected.items()}
        assert sum(a.plays for a in got.values()) == sum(len(r) for r in paths.values())
        assert pipeline.stats.events["replayed_contributions"] > 0
        assert pipeline.stats.dead_letters["undecodable"] == 1
    finally:
        await pipeline.stop()
