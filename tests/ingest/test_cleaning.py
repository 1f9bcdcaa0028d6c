import datetime as dt

import pytest

from spotify_stream.ingest.cleaning import (
    FirstWins,
    Rejected,
    clean_album_row,
    clean_artist,
    clean_features,
    clean_track,
    merge_track,
    release_date,
)
from spotify_stream.models.deadletters import Reason

TS = 1_700_000_000_000


def rejected(reason, fn, *args):
    with pytest.raises(Rejected) as info:
        fn(*args)
    assert info.value.reason == reason
    return info.value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-02-08 00:00:00 UTC", (dt.date(2019, 2, 8), "day")),
        ("2019-02-08", (dt.date(2019, 2, 8), "day")),
        ("2019-02", (dt.date(2019, 2, 1), "month")),
        ("1987", (dt.date(1987, 1, 1), "year")),
        ("", (None, None)),
    ],
)
def test_release_date_precision(text, expected):
    assert release_date({"d": text}, "d") == expected


@pytest.mark.parametrize("text", ["20x9-13-45", "2019-13", "2019-02-30", "0099", "yesterday"])
def test_bad_release_dates(text):
    rejected(Reason.BAD_DATE, release_date, {"d": text}, "d")


ARTIST = {
    "id": "a1",
    "name": "Björk",
    "artist_popularity": "77",
    "followers": "1234.0",
    "artist_genres": "['art pop', 'icelandic pop']",
    "genre_0": "art pop",
    "genre_1": "icelandic pop",
    "genre_2": "art pop",
    "genre_3": "",
}


def test_artist_coerces_and_lists_genres():
    assert clean_artist(ARTIST, TS) == {
        "artist_id": "a1",
        "name": "Björk",
        "popularity": 77,
        "followers": 1234,
        "genres": ["art pop", "icelandic pop"],
        "updated_at": TS,
    }


def test_artist_genres_fall_back_to_the_list_column():
    row = {**ARTIST, "genre_0": "", "genre_1": "", "genre_2": ""}
    assert clean_artist(row, TS)["genres"] == ["art pop", "icelandic pop"]


def test_empty_cells_become_nulls():
    row = {"id": "a2", "name": "X", "artist_popularity": "", "followers": " "}
    assert clean_artist(row, TS) | {} == {
        "artist_id": "a2",
        "name": "X",
        "popularity": None,
        "followers": None,
        "genres": [],
        "updated_at": TS,
    }


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"artist_popularity": "101"}, Reason.POPULARITY_OUT_OF_RANGE),
        ({"artist_popularity": "-1"}, Reason.POPULARITY_OUT_OF_RANGE),
        ({"id": "  "}, Reason.MISSING_ID),
        ({"followers": "lots"}, Reason.BAD_VALUE),
        ({"followers": "1.5"}, Reason.BAD_VALUE),
        ({"followers": "-3"}, Reason.BAD_VALUE),
        ({"artist_popularity": "nan"}, Reason.BAD_VALUE),
    ],
)
def test_artist_rejections(change, reason):
    rejected(reason, clean_artist, {**ARTIST, **change}, TS)


ALBUM_ROW = {
    "track_name": "Hyperballad",
    "track_id": "t1",
    "track_number": "3",
    "duration_ms": "321000",
    "album_type": "album",
    "artists": "['Björk']",
    "total_tracks": "11",
    "album_name": "Post",
    "release_date": "1995-06-13 00:00:00 UTC",
    "label": "One Little Indian, Ltd.",
    "album_popularity": "64",
    "album_id": "al1",
    "artist_id": "a1",
    "artist_0": "Björk",
    "artist_1": "",
    "duration_sec": "321.0",
}


def test_album_row_splits_into_album_and_membership():
    album, membership = clean_album_row(ALBUM_ROW, TS)
    assert album == {
        "album_id": "al1",
        "name": "Post",
        "album_type": "album",
        "release_date": dt.date(1995, 6, 13),
        "release_date_precision": "day",
        "label": "One Little Indian, Ltd.",
        "popularity": 64,
        "total_tracks": 11,
        "artist_id": "a1",
        "updated_at": TS,
    }
    assert membership == {
        "track_id": "t1",
        "name": "Hyperballad",
        "album_id": "al1",
        "track_number": 3,
        "duration_ms": 321000,
        "artist_id": "a1",
        "artist_names": ["Björk"],
    }


def test_album_row_duration_from_seconds_when_ms_missing():
    _, membership = clean_album_row({**ALBUM_ROW, "duration_ms": "", "duration_sec": "200.5"}, TS)
    assert membership["duration_ms"] == 200500


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"duration_ms": "-1"}, Reason.NEGATIVE_DURATION),
        ({"album_popularity": "200"}, Reason.POPULARITY_OUT_OF_RANGE),
        ({"track_id": ""}, Reason.MISSING_ID),
        ({"album_id": ""}, Reason.MISSING_ID),
    ],
)
def test_album_row_rejections(change, reason):
    rejected(reason, clean_album_row, {**ALBUM_ROW, **change}, TS)


def test_track_merges_popularity_with_membership():
    part = clean_track({"id": "t1", "track_popularity": "50", "explicit": "True"}, TS)
    _, membership = clean_album_row(ALBUM_ROW, TS)
    assert merge_track(part, membership, TS + 1) == {
        "track_id": "t1",
        "name": "Hyperballad",
        "album_id": "al1",
        "track_number": 3,
        "duration_ms": 321000,
        "artist_id": "a1",
        "artist_names": ["Björk"],
        "popularity": 50,
        "explicit": True,
        "updated_at": TS + 1,
    }
    assert merge_track(None, membership, TS)["popularity"] is None
    assert merge_track(part, None, TS)["album_id"] is None


def test_track_explicit_must_be_boolean():
    rejected(
        Reason.BAD_VALUE, clean_track, {"id": "t", "track_popularity": "1", "explicit": "maybe"}, TS
    )


FEATURES = {
    "id": "t1",
    "danceability": "0.5",
    "energy": "1.0",
    "key": "-1",
    "loudness": "-7.5",
    "mode": "0",
    "speechiness": "0",
    "acousticness": "0.1",
    "instrumentalness": "0.0",
    "liveness": "0.2",
    "valence": "0.3",
    "tempo": "120.5",
    "duration_ms": "200000",
    "time_signature": "4",
}


def test_features_in_range_pass():
    record = clean_features(FEATURES, TS)
    assert record["energy"] == 1.0 and record["key"] == -1 and record["tempo"] == 120.5


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"tempo": "0"}, Reason.TEMPO_NOT_POSITIVE),
        ({"tempo": "-3"}, Reason.TEMPO_NOT_POSITIVE),
        ({"valence": "1.01"}, Reason.FEATURE_OUT_OF_RANGE),
        ({"danceability": "-0.1"}, Reason.FEATURE_OUT_OF_RANGE),
        ({"key": "12"}, Reason.FEATURE_OUT_OF_RANGE),
        ({"mode": "2"}, Reason.FEATURE_OUT_OF_RANGE),
        ({"duration_ms": "-5"}, Reason.NEGATIVE_DURATION),
    ],
)
def test_feature_rejections(change, reason):
    rejected(reason, clean_features, {**FEATURES, **change}, TS)


def test_first_valid_row_wins_duplicates():
    dedup = FirstWins()
    dedup.check("a", 2)
    dedup.check("b", 3)
    error = rejected(Reason.DUPLICATE_ID, dedup.check, "a", 9)
    assert "first seen at line 2" in error.detail
