"""The join's pure parts: which dimensions are missing, what the record holds."""

from __future__ import annotations

import pytest

from spotify_stream.agents.enrichment import (
    ALBUM_FIELDS,
    ARTIST_FIELDS,
    PARTS,
    encode_distance,
    features_part,
    missing_parts,
)
from spotify_stream.models import codec_for
from spotify_stream.models.codec import body_if_current
from tests.agents.test_late_dimensions import album, artist, features, track
from tests.reference import enriched_record


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
    record = enriched_record(t, al, ar, f)
    assert record["complete"] and record["missing"] == []
    assert (record["album_name"], record["album_popularity"]) == ("First", 40)
    assert (record["artist_name"], record["genres"]) == ("Ann", ["indie", "pop"])
    assert (record["tempo"], record["features_updated_at"]) == (120.0, f["updated_at"])
    assert {k: record[k] for k in t} == t
    bare = enriched_record(t, None, None, None)
    assert not bare["complete"] and bare["missing"] == ["album", "artist", "features"]
    assert bare["genres"] == [] and bare["album_name"] is None


@pytest.mark.parametrize("present", [(1, 1, 1), (0, 0, 0), (1, 0, 1), (0, 1, 0)])
def test_enriched_bytes_from_parts_equal_encoding_the_record(present):
    """The hot path concatenates cached parts; it must produce the codec's exact bytes."""
    t = track(1, "al1", "a1")
    al = album("al1", "First") if present[0] else None
    ar = artist("a1", "Ann") if present[1] else None
    f = features("track1") if present[2] else None
    parts = [
        PARTS.header,
        PARTS.encode("track", t),
        PARTS.encode("album", {o: al.get(s) for o, s in ALBUM_FIELDS.items()})
        if al
        else PARTS.encode("album", {}),
        PARTS.encode("artist", {o: ar.get(s) for o, s in ARTIST_FIELDS.items()})
        if ar
        else PARTS.encode("artist", {}),
        PARTS.encode("features", features_part(f) if f else {}),
        PARTS.encode("status", {"complete": all(present), "missing": missing_parts(t, al, ar, f)}),
    ]
    encoded = codec_for("Track").encode(t)
    assert body_if_current("Track", encoded) == parts[1]
    unassigned = PARTS.encode("cluster", {}) + PARTS.encode("distance", {})
    codec = codec_for("EnrichedTrack")
    assert b"".join(parts) + unassigned == codec.encode(enriched_record(t, al, ar, f))
    assigned = PARTS.encode("cluster", {"cluster_id": 3, "model_version": 7}) + encode_distance(
        1.25
    )
    record = enriched_record(t, al, ar, f) | {
        "cluster_id": 3,
        "model_version": 7,
        "cluster_distance": 1.25,
    }
    assert b"".join(parts) + assigned == codec.encode(record)


@pytest.mark.parametrize("distance", [0.0, 1e-9, 2.5, 1234.5678])
def test_the_distance_written_directly_is_avro(distance):
    assert encode_distance(distance) == PARTS.encode("distance", {"cluster_distance": distance})


def test_the_track_part_decodes_alone_from_an_enriched_record():
    t = track(1, "al1", "a1")
    encoded = codec_for("EnrichedTrack").encode(enriched_record(t, album("al1", "A"), None, None))
    assert PARTS.decode("track", encoded[len(PARTS.header) :]) == t
