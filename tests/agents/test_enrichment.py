"""The join's pure parts: which dimensions are missing, what the record holds."""

from __future__ import annotations

from spotify_stream.agents.enrichment import enrich, missing_parts, track_of
from tests.agents.test_late_dimensions import album, artist, features, track


def test_missing_parts_only_count_referenced_dimensions():
    t = track(1, "al1", "a1")
    assert missing_parts(t, None, None, None) == ["album", "artist", "features"]
    assert missing_parts({**t, "album_id": None, "artist_id": None}, None, None, {}) == []
    assert missing_parts(t, album("al1", "A"), artist("a1", "B"), features("track1")) == []


def test_enriched_record_takes_each_part_from_its_dimension():
    t, al, ar, f = (
        track(1, "al1", "a1"),
        album("al1", "First"),
        artist("a1", "Ann"),
        features("track1"),
    )
    record = enrich(t, al, ar, f)
    assert record["complete"] and record["missing"] == []
    assert (record["album_name"], record["album_popularity"]) == ("First", 40)
    assert (record["artist_name"], record["genres"]) == ("Ann", ["indie", "pop"])
    assert (record["tempo"], record["features_updated_at"]) == (120.0, f["updated_at"])
    assert track_of(record) == t
    bare = enrich(t, None, None, None)
    assert not bare["complete"] and bare["missing"] == ["album", "artist", "features"]
    assert bare["genres"] == [] and bare["album_name"] is None
