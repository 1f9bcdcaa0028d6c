"""Late, missing and changing dimensions: pending joins, max wait, re-emission."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from spotify_stream import topics
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from tests.agents.test_enrichment_e2e import enriched_by_key
from tests.conftest import send_records

pytestmark = pytest.mark.slow

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def track(n: int, album: str, artist: str) -> dict:
    return {
        "track_id": f"track{n}",
        "name": f"Song {n}",
        "album_id": album,
        "track_number": n,
        "duration_ms": 200_000 + n,
        "artist_id": artist,
        "artist_names": [f"Artist {artist}", "Guest"],
        "popularity": 50 + n,
        "explicit": False,
        "updated_at": T0,
    }


def album(album_id: str, name: str, at: dt.datetime = T0) -> dict:
    return {
        "album_id": album_id,
        "name": name,
        "album_type": "album",
        "popularity": 40,
        "total_tracks": 2,
        "artist_id": "a1",
        "updated_at": at,
    }


def artist(artist_id: str, name: str, at: dt.datetime = T0) -> dict:
    return {
        "artist_id": artist_id,
        "name": name,
        "popularity": 70,
        "followers": 1000,
        "genres": ["indie", "pop"],
        "updated_at": at,
    }


def features(track_id: str) -> dict:
    return {
        "track_id": track_id,
        "danceability": 0.5,
        "energy": 0.7,
        "tempo": 120.0,
        "updated_at": T0,
    }


def test_tracks_wait_for_late_dimensions_then_emit_complete(fresh_settings, tmp_path):
    settings = fresh_settings.model_copy(update={"join_max_wait": 600})
    tracks = [track(1, "al1", "a1"), track(2, "al1", "a1")]
    asyncio.run(send_records(settings, [(topics.TRACKS, t) for t in tracks]))
    with WorkerProcess(settings, tmp_path) as worker:
        waiting = wait_for(lambda: worker.get("/pipeline/stats")["pending_joins"] == 2, 30)
        assert waiting
        assert enriched_by_key(settings) == {}
        status, body = worker.get_status("/tracks/track1")
        assert status == 404 and "waiting" in body["error"]

        asyncio.run(send_records(settings, [(topics.ALBUMS, album("al1", "First"))]))
        asyncio.run(send_records(settings, [(topics.ARTISTS, artist("a1", "Ann"))]))
        asyncio.run(
            send_records(
                settings,
                [
                    (topics.AUDIO_FEATURES, features("track1")),
                    (topics.AUDIO_FEATURES, features("track2")),
                ],
            )
        )
        got = wait_for(lambda: (e := enriched_by_key(settings)) and len(e) == 2 and e, 30)
        assert worker.get("/pipeline/stats")["pending_joins"] == 0
        lookup = worker.get("/tracks/track1")

    for track_id in ("track1", "track2"):
        assert len(got[track_id]) == 1, "emitted once, when complete"
        record = got[track_id][0]
        assert record["complete"] and record["missing"] == []
        assert record["album_name"] == "First" and record["artist_name"] == "Ann"
        assert record["genres"] == ["indie", "pop"] and record["tempo"] == 120.0
        assert record["artist_names"] == ["Artist a1", "Guest"]
    assert lookup["album_name"] == "First" and lookup["track_id"] == "track1"


def test_max_wait_emits_flagged_then_dimension_changes_re_emit(fresh_settings, tmp_path):
    settings = fresh_settings.model_copy(update={"join_max_wait": 2})
    asyncio.run(
        send_records(
            settings,
            [
                (topics.ARTISTS, artist("a1", "Ann")),
                (topics.AUDIO_FEATURES, features("track1")),
                (topics.TRACKS, track(1, "never", "a1")),
            ],
        )
    )
    with WorkerProcess(settings, tmp_path) as worker:
        first = wait_for(lambda: enriched_by_key(settings).get("track1"), 30)
        assert first and len(first) == 1
        flagged = first[0]
        assert flagged["complete"] is False and flagged["missing"] == ["album"]
        assert flagged["album_name"] is None and flagged["artist_name"] == "Ann"

        # The album arrives late after all: the track is re-emitted, complete.
        asyncio.run(send_records(settings, [(topics.ALBUMS, album("never", "Late"))]))
        versions = wait_for(lambda: len(v := enriched_by_key(settings)["track1"]) == 2 and v, 30)
        assert versions[1]["complete"] and versions[1]["album_name"] == "Late"

        # A newer artist version re-emits; an older one arriving afterwards does not.
        later = T0 + dt.timedelta(days=1)
        asyncio.run(send_records(settings, [(topics.ARTISTS, artist("a1", "Ann B", later))]))
        versions = wait_for(lambda: len(v := enriched_by_key(settings)["track1"]) == 3 and v, 30)
        assert versions[2]["artist_name"] == "Ann B"
        asyncio.run(send_records(settings, [(topics.ARTISTS, artist("a1", "Old Ann"))]))
        assert wait_for(lambda: worker.get("/pipeline/stats")["dimensions"]["stale_versions"], 10)
        assert worker.get("/artists/a1")["name"] == "Ann B"
        stats = worker.get("/pipeline/stats")
    assert len(enriched_by_key(settings)["track1"]) == 3
    assert stats["events"]["emitted_incomplete"] == 1
    assert stats["events"]["re-emitted"] == 2
