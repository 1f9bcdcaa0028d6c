"""Rolling popularity from scripted plays with known times, against a hand computation."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
from collections import defaultdict

import pytest

from spotify_stream import topics
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.models import codec_for
from tests.agents.test_enrichment_e2e import enriched_by_key
from tests.agents.test_late_dimensions import T0, album, artist, features, track
from tests.conftest import consume_all, send_records

pytestmark = pytest.mark.slow

HOUR = 3_600_000
B = int(T0.timestamp() * 1000)
PLAYS = [  # user, track, minutes after T0, skipped
    ("u1", "track1", 10, False),
    ("u2", "track1", 20, True),
    ("u1", "track2", 30, False),
    ("u3", "track1", 70, False),
]
#: A play of each track pushes the clock of every partition the plays reach past every
#: window above (event time is kept per partition).
FLUSH = [("u9", t, 3 * 24 * 60, False) for t in ("track1", "track2")]
POPULARITY = {"track1": 51, "track2": 52, "artist": 70, "album": 40}


def play(user: str, track_id: str, minutes: int, skipped: bool) -> dict:
    return {
        "user_id": user,
        "track_id": track_id,
        "played_at": T0 + dt.timedelta(minutes=minutes),
        "ms_played": 1000,
        "skipped": skipped,
        "session_id": f"s-{user}",
    }


def expected_windows(plays: list[tuple], watermark: int) -> dict[tuple, dict]:
    """Every closed window per entity, by brute force over the accepted plays."""
    cells = defaultdict(list)
    for user, track_id, minutes, skipped in plays:
        t = B + minutes * 60_000
        entities = [
            ("track", track_id, POPULARITY[track_id]),
            ("artist", "a1", POPULARITY["artist"]),
            ("album", "al1", POPULARITY["album"]),
            ("genre", "indie", POPULARITY["artist"]),
            ("genre", "pop", POPULARITY["artist"]),
        ]
        for name, size in (("1h", HOUR), ("24h", 24 * HOUR)):
            for start in range((t - size) // HOUR * HOUR, t + 1, HOUR):
                if start <= t < start + size and start + size <= watermark:
                    for kind, key, pop in entities:
                        cells[(kind, key, name, start)].append((user, skipped, pop))
    return {
        cell: {
            "plays": len(rows),
            "unique_listeners": len({u for u, _, _ in rows}),
            "skip_rate": sum(s for _, s, _ in rows) / len(rows),
            "mean_popularity": sum(p for _, _, p in rows) / len(rows),
        }
        for cell, rows in cells.items()
    }


def send_catalog(settings) -> None:
    catalog = [
        (topics.ARTISTS, artist("a1", "Ann")),
        (topics.ALBUMS, album("al1", "First")),
        *((topics.AUDIO_FEATURES, features(t)) for t in ("track1", "track2")),
        *((topics.TRACKS, track(n, "al1", "a1")) for n in (1, 2)),
    ]
    asyncio.run(send_records(settings, catalog))


def send_plays(settings, plays: list[tuple]) -> None:
    asyncio.run(send_records(settings, [(topics.PLAYS, play(*p)) for p in plays]))


def windows_emitted(settings, expected: dict) -> dict[tuple, dict]:
    """The popularity records, once there are as many as expected, by cell (each once)."""
    codec = codec_for("Popularity")

    def emitted() -> list[dict]:
        messages = asyncio.run(consume_all(settings, topics.POPULARITY.name))
        return [codec.decode(m.value) for m in messages]

    records = wait_for(lambda: len(r := emitted()) >= len(expected) and r, 30) or []
    got = {}
    for r in records:
        cell = (
            r["entity_type"],
            r["entity_id"],
            r["window"],
            int(r["window_start"].timestamp() * 1000),
        )
        assert cell not in got, f"window emitted twice: {cell}"
        assert int(r["window_end"].timestamp() * 1000) - cell[3] == (
            HOUR if r["window"] == "1h" else 24 * HOUR
        )
        got[cell] = {k: r[k] for k in ("plays", "unique_listeners", "skip_rate", "mean_popularity")}
    return got


def contributed(worker, settings) -> int:
    contributions = topics.internal(settings.app_id, topics.CONTRIBUTIONS)
    return worker.topic_stats(contributions).get("records_in", 0)


def contributions_sent(settings) -> int:
    """Distinct contributions in their topic (a replay after a crash sends some again):
    what is there is read, per partition, before what is sent next. A row is
    ``[entity, ..., source, order]`` in a message ``[attribution partition, rows]``."""
    contributions = topics.internal(settings.app_id, topics.CONTRIBUTIONS)
    messages = asyncio.run(consume_all(settings, contributions))
    return len(
        {
            (row[0], origin, *row[-2:])
            for origin, rows in (json.loads(m.value) for m in messages)
            for row in rows
        }
    )


def test_closed_windows_equal_hand_computed_values(fresh_settings, tmp_path):
    # The plays' partitions are read in any order: a grace longer than their spread (an
    # hour) keeps every window open until the flush plays.
    settings = fresh_settings.model_copy(update={"window_grace": 7200})
    send_catalog(settings)
    with WorkerProcess(settings, tmp_path) as worker:
        assert wait_for(lambda: len(enriched_by_key(settings)) == 2, 30)
        send_plays(settings, PLAYS)
        assert wait_for(lambda: contributed(worker, settings) == 5 * len(PLAYS), 30)
        # nothing closed yet: the page says when the first window (hour 0) will
        body = worker.get("/popularity/top?entity=artist&window=1h")
        assert body["top"] == [] and body["note"].startswith(
            "no 1h window has closed yet: the first closes once plays of event time "
            "2026-01-01 03:00:00 UTC arrive"  # its end, T0 + 1 h, plus the 2 h grace
        )
        send_plays(settings, FLUSH)
        expected = expected_windows(PLAYS, B + FLUSH[0][2] * 60_000 - 7_200_000)
        got = windows_emitted(settings, expected)

        def latest_artist_window() -> dict:
            top = worker.get("/popularity/top?entity=artist&window=1h&n=5")["top"]
            return top and top[0]["window_end"] == (T0 + dt.timedelta(hours=2)).isoformat() and top

        top = wait_for(latest_artist_window, 15)
        stats = worker.get("/pipeline/stats")

    assert got == expected
    # 1 h: 6 entities in hour 0, 5 in hour 1; 24 h: 24 windows reach hour 0, one only hour 1.
    assert len(expected) == 6 + 5 + 24 * 6 + 5
    assert stats["events"].get("late_contributions", 0) == 0
    # The latest closed 1 h window of artists is hour 1: one play by u3.
    assert [(e["entity_id"], e["plays"], e["unique_listeners"]) for e in top] == [("a1", 1, 1)]


def test_windows_count_plays_out_of_order_across_a_crash(fresh_settings, tmp_path):
    """Plays out of order within open windows all count once, before and after a crash; a
    play older than a closed window is late; a play dated ahead is dead-lettered
    and moves no clock."""
    settings = fresh_settings
    send_catalog(settings)
    h16 = 16 * 60
    before = [  # newest first, then older ones whose windows are still open
        *(("u1", "track1", h16 + 35, False) for _ in range(3)),
        *((f"u{n}", "track1", h16 + 30, n % 2 == 0) for n in range(3)),
        ("u4", "track2", h16 + 10, False),
        ("u5", "track2", h16 + 59, True),
    ]
    ahead = {**play("u6", "track1", 0, False), "played_at": dt.datetime.now(dt.UTC)}
    ahead["played_at"] += dt.timedelta(days=3650)
    after = [  # the clocks stand at most at 16:59 - grace: every window from 16:00 is open
        ("u7", "track1", h16 + 5, False),
        ("u2", "track1", h16 + 1, True),
        ("u1", "track2", h16 + 40, False),
    ]
    late = ("u9", "track1", h16 - 10, False)  # the 1 h window ending at 16:00 is closed
    with WorkerProcess(settings, tmp_path) as worker:
        assert wait_for(lambda: len(enriched_by_key(settings)) == 2, 30)
        send_plays(settings, before)
        asyncio.run(send_records(settings, [(topics.PLAYS, ahead)]))
        assert wait_for(lambda: contributions_sent(settings) == 5 * len(before), 30)
        assert wait_for(
            lambda: worker.get("/pipeline/stats")["dead_letters"].get("future_event_time"), 15
        )
        worker.stop(signal.SIGKILL)
        worker.start()
        send_plays(settings, after)
        assert wait_for(lambda: contributions_sent(settings) == 5 * len(before + after), 30)
        send_plays(settings, [late])
        assert wait_for(
            lambda: worker.get("/pipeline/stats")["events"].get("late_contributions") == 5, 30
        ), worker.tail()
        send_plays(settings, FLUSH)
        expected = expected_windows(before + after, B + FLUSH[0][2] * 60_000 - 60_000)
        got = windows_emitted(settings, expected)
        stats = worker.get("/pipeline/stats")

    assert got == expected
    assert len({cell for cell in got if cell[2] == "1h"}) == 6  # hour 16: every entity
    assert stats["events"]["late_contributions"] == 5
    letters = [
        codec_for("DeadLetter").decode(m.value)
        for m in asyncio.run(consume_all(settings, topics.DEADLETTER.name))
    ]
    # one message dead-lettered (the crash may have it lettered twice: at-least-once)
    assert {(d["reason"], d["source"], d["partition"], d["offset"]) for d in letters} == {
        ("future_event_time", topics.PLAYS.name, letters[0]["partition"], letters[0]["offset"])
    }
    assert codec_for("Play").decode(letters[0]["raw"])["user_id"] == "u6"


def test_popularity_top_rejects_bad_parameters(fresh_settings, tmp_path, aws_env):
    # a worker that only streams, its lake an S3 nobody answers at
    settings = fresh_settings.model_copy(
        update={"lake_sink": False, "lake": "s3://nobucket/x", "s3_endpoint": "http://127.0.0.1:9"}
    )
    with WorkerProcess(settings, tmp_path) as worker:
        assert worker.get_status("/popularity/top?entity=planet")[0] == 400
        assert worker.get_status("/popularity/top?window=../../etc") == (
            400,
            {"error": "window must be one of 1h, 24h"},
        )
        status, body = worker.get_status("/dashboard/data/top_albums")
        assert status == 503 and body["error"].startswith("cannot read the lake at s3://nobucket/x")
        before = worker.get("/pipeline/stats")
        assert worker.get_status("/popularity/top?n=x")[0] == 400
        assert worker.get_status("/popularity/top?n=0")[0] == 400
        status, body = worker.get_status("/artists/nobody")
        assert status == 404 and body == {"error": "no artist nobody"}
        assert worker.get_status("/albums/none") == (404, {"error": "no album none"})
        metrics = worker.get("/metrics")
    assert "spotify_stream_uptime_seconds" in metrics
    assert "spotify_stream_pending_joins 0.0" in metrics
    # nothing was ever sent: the lag is unknown, not zero, until a partition is read
    assert before["lag_total"] is None
    assert all(e["lag"] is None for e in before["consumer_lag"])
