import asyncio
import itertools
import time
from collections import Counter

import numpy as np
import pytest

from spotify_stream import topics
from spotify_stream.ingest.plays import PlaySimulator, load_catalog, run_simulation
from spotify_stream.ingest.producer import produce
from spotify_stream.models import codec_for
from tests.conftest import consume_all

CATALOG = [(f"t{i}", p, 180_000) for i, p in enumerate([90, 70, 50, 30, 10, 0] * 20)]


def test_same_seed_same_plays():
    a = PlaySimulator(CATALOG, users=50, seed=1)
    b = PlaySimulator(CATALOG, users=50, seed=1)
    assert [a.play(1000) for _ in range(200)] == [b.play(1000) for _ in range(200)]


def test_popular_tracks_are_played_more_and_skipped_less():
    sim = PlaySimulator(CATALOG, users=200, seed=2)
    plays = [sim.play(0) for _ in range(20_000)]
    popularity = {t: p for t, p, _ in CATALOG}
    by_level = Counter(popularity[p["track_id"]] for p in plays)
    assert by_level[90] > by_level[50] > by_level[10] > 0
    skip = {
        level: np.mean([p["skipped"] for p in plays if popularity[p["track_id"]] == level])
        for level in (90, 10)
    }
    assert skip[90] < skip[10]
    for p in plays:
        assert 0 < p["ms_played"] <= 180_000
        assert p["skipped"] == (p["ms_played"] <= 30_000) or not p["skipped"]
    sessions = Counter(p["session_id"] for p in plays)
    plays_per_session = np.mean(list(sessions.values()))
    assert plays_per_session > 1.5 and plays_per_session < 20


@pytest.mark.slow
async def test_simulation_sends_plays_of_known_tracks(fresh_settings, generated):
    await produce(fresh_settings, str(generated))
    catalog = await load_catalog(fresh_settings)
    assert len(catalog) == 5000
    sent = await run_simulation(
        fresh_settings, rate=400, users=50, duration=1.0, seed=3, stop=asyncio.Event()
    )
    assert 350 <= sent <= 400
    messages = await consume_all(fresh_settings, topics.PLAYS.name)
    assert len(messages) == sent
    codec = codec_for("Play")
    known = {t[0] for t in catalog}
    for message in messages:
        play = codec.decode(message.value)
        assert play["track_id"] in known
        assert message.key == play["user_id"].encode()
        assert message.timestamp == int(play["played_at"].timestamp() * 1000)


async def test_a_backfill_spreads_plays_over_the_past_period(fresh_settings, generated):
    """Played over the two hours before now, in time order; sent now (the message
    timestamp), then the live plays."""
    await produce(fresh_settings, str(generated))
    before = time.time() * 1000
    sent = await run_simulation(
        fresh_settings,
        rate=100,
        users=50,
        duration=0.5,
        seed=3,
        stop=asyncio.Event(),
        backfill=7200,
        backfill_plays=1000,
    )
    after = time.time() * 1000
    assert 1040 <= sent <= 1050
    codec = codec_for("Play")
    messages = await consume_all(fresh_settings, topics.PLAYS.name)
    played = sorted(
        (int(codec.decode(m.value)["played_at"].timestamp() * 1000), m.timestamp) for m in messages
    )
    past = played[:1000]
    assert past[0][0] == pytest.approx(before - 7_200_000, abs=2000)
    assert {b[0] - a[0] for a, b in itertools.pairwise(past)} == {7200}  # 7.2 s apart
    assert all(before <= ts <= after for _, ts in past)  # sent during the run
    assert all(at >= before and ts == at for at, ts in played[1000:])  # live: sent when played


@pytest.mark.slow
async def test_simulation_without_tracks_asks_for_produce_first(fresh_settings):
    from spotify_stream.errors import UserError

    with pytest.raises(UserError, match="run `spotify-stream produce` first"):
        await run_simulation(
            fresh_settings, rate=10, users=1, duration=1, seed=1, stop=asyncio.Event()
        )
