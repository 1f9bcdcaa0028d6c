"""The recommendation index against brute-force references computed here with numpy."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from spotify_stream.ml.clustering import FEATURES, ClusterModel
from spotify_stream.ml.profiles import BOOK_SCHEMA, training_rows
from spotify_stream.ml.recommend import (
    POPULARITY_WEIGHT,
    NotIndexed,
    Played,
    TrackIndex,
    index_messages,
)
from spotify_stream.models import codec_for
from tests.models.test_codec import SAMPLES

CENTERS = np.array([[-3.0] * 9, [0.0] * 9, [3.0] * 9])


def rows(x: np.ndarray, *, start: int = 0, popularity=None, names=None) -> pa.Table:
    n = len(x)
    return pa.Table.from_pylist(
        [
            {
                "track_id": f"t{start + i}",
                "name": names[i] if names else f"song {start + i}",
                "artist_name": "someone",
                "popularity": int(popularity[i]) if popularity is not None else 50,
                "genres": [],
                **{
                    f: (None if np.isnan(v) else float(v))
                    for f, v in zip(FEATURES, x[i], strict=True)
                },
            }
            for i in range(n)
        ],
        schema=BOOK_SCHEMA,
    )


def model_for(x: np.ndarray, centers: np.ndarray, version: int = 1) -> ClusterModel:
    mean, var = x.mean(axis=0), x.var(axis=0)
    return ClusterModel(
        version=version,
        k=len(centers),
        rows_seen=len(x),
        mean=mean,
        var=var,
        centroids=(centers - mean) / np.sqrt(var),
        counts=np.ones(len(centers)),
        steps=1,
    )


@pytest.fixture
def blobs() -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.concatenate([c + rng.normal(size=(100, 9)) for c in CENTERS])


def test_similar_are_the_nearest_of_the_tracks_cluster(blobs):
    index = TrackIndex()
    index.add(rows(blobs))
    model = model_for(blobs, CENTERS)
    labels, _ = model.assign(blobs)
    z = model.standardize(blobs)
    for query in (0, 150, 299):
        same = np.flatnonzero((labels == labels[query]) & (np.arange(300) != query))
        distance = np.linalg.norm(z[same] - z[query], axis=1)
        expected = [f"t{i}" for i in same[np.argsort(distance)][:10]]
        got = index.similar(f"t{query}", 10, model)
        assert [t["track_id"] for t in got] == expected
        assert [t["distance"] for t in got] == pytest.approx(np.sort(distance)[:10], abs=1e-4)
        assert {t["cluster_id"] for t in got} == {labels[query]}


def test_a_small_cluster_borrows_from_the_nearest(blobs):
    # a cluster of three tracks far from the rest, nearest to the centre blob
    small = np.full((3, 9), 8.0) + np.arange(3)[:, None] * 0.1
    x = np.concatenate([blobs, small])
    index = TrackIndex()
    index.add(rows(x))
    model = model_for(x, np.concatenate([CENTERS, [[8.0] * 9]]))
    got = index.similar("t300", 10, model)
    ids = [t["track_id"] for t in got]
    assert ids[:2] == ["t301", "t302"]  # its own cluster first
    assert len(ids) == 10 and len(set(ids)) == 10 and "t300" not in ids
    # then the nearest cluster by centroid: the blob at +3
    assert {t["cluster_id"] for t in got[2:]} == {2}


def test_duplicates_and_the_track_itself_are_left_out(blobs):
    names = [f"song {i}" for i in range(300)]
    names[1] = names[2] = names[0]  # the same song released three times
    names[4] = names[5]
    index = TrackIndex()
    index.add(rows(blobs, names=names))
    model = model_for(blobs, CENTERS)
    ids = [t["track_id"] for t in index.similar("t0", 50, model)]
    assert "t0" not in ids and "t1" not in ids and "t2" not in ids
    assert not {"t4", "t5"} <= set(ids)
    assert len(ids) == len(set(ids)) == 50


def test_recommendations_against_brute_force(blobs):
    rng = np.random.default_rng(5)
    popularity = rng.integers(0, 101, size=300)
    index = TrackIndex()
    index.add(rows(blobs, popularity=popularity))
    model = model_for(blobs, CENTERS)
    played = [Played("t3", False), Played("t7", False), Played("t250", True), Played("nope", False)]
    # n large enough that the candidates are every track: a plain reference applies
    got, based_on = index.recommend(played, 60, model)
    assert based_on == 2  # the skipped play and the unknown track do not shape the taste
    z = model.standardize(blobs)
    taste = z[[3, 7]].mean(axis=0)
    distance = np.linalg.norm(z - taste, axis=1)
    score = distance / (1 + POPULARITY_WEIGHT * popularity / 100)
    score[[3, 7, 250]] = np.inf  # played, skipped or not
    expected = [f"t{i}" for i in np.argsort(score, kind="stable")[:60]]
    assert [t["track_id"] for t in got] == expected
    assert [t["popularity"] for t in got] == [popularity[int(i[1:])] for i in expected]


def test_popular_tracks_are_favoured_at_equal_distance():
    x = np.array([[0.0] * 9, [1.0] * 9, [1.0] * 9, [-1.0] * 9, [5.0] * 9])
    index = TrackIndex()
    index.add(rows(x, popularity=[50, 10, 90, 50, 50], names=["a", "b", "c", "d", "e"]))
    model = model_for(x, np.array([[0.0] * 9]))
    got, _ = index.recommend([Played("t0", False)], 3, model)
    assert [t["track_id"] for t in got] == ["t2", "t3", "t1"]


def test_updates_replace_rows_and_incomplete_features_are_not_indexed(blobs):
    index = TrackIndex()
    index.add(rows(blobs))
    model = model_for(blobs, CENTERS)
    assert index.similar("t0", 3, model)[0]["cluster_id"] == 0
    # t0's features change to the +3 blob: same version, its row is standardized again
    index.add(rows(np.array([[3.0] * 9])))
    assert index.similar("t0", 3, model)[0]["cluster_id"] == 2
    assert len(index) == 300
    index.add(rows(np.array([[np.nan] + [0.0] * 8]), start=1))
    assert len(index) == 299
    with pytest.raises(NotIndexed, match="incomplete"):
        index.similar("t1", 3, model)
    with pytest.raises(NotIndexed, match="no track"):
        index.similar("missing", 3, model)
    assert "t1" not in [t["track_id"] for t in index.similar("t2", 299, model)]
    # a new version relabels everything
    flipped = model_for(blobs, CENTERS[::-1], version=2)
    assert index.similar("t0", 3, flipped)[0]["cluster_id"] == 0


def test_a_user_without_indexed_plays():
    index = TrackIndex()
    x = np.array([[0.0] * 9, [1.0] * 9])
    index.add(rows(x))
    model = model_for(np.array([[0.0] * 9, [1.0] * 9]), np.array([[0.0] * 9]))
    with pytest.raises(NotIndexed, match="none of the 1"):
        index.recommend([Played("unknown", False)], 3, model)
    # only skipped plays: the taste is taken from them rather than refused
    got, based_on = index.recommend([Played("t0", True)], 3, model)
    assert based_on == 1 and [t["track_id"] for t in got] == ["t1"]


async def test_index_messages_are_read_off_the_loop_and_bad_ones_skipped(caplog):
    codec = codec_for("EnrichedTrack")
    sample = SAMPLES["EnrichedTrack"]
    bodies = [
        codec.encode(sample | {"track_id": f"m{i}", "name": f"song {i}", "danceability": i / 10})
        for i in range(5)
    ]
    index = TrackIndex()
    for value in index_messages(training_rows(bodies[:3])):
        index.add_message(value)
    index.add_message(b"not arrow")
    for value in index_messages(training_rows([*bodies[3:], bodies[0]])):  # m0 again
        index.add_message(value)
    index.add_message(None)  # a tombstone: nothing
    await index.read()
    assert len(index) == 5 and index.ids == [f"m{i}" for i in range(5)]
    assert "skipping an unreadable message" in caplog.text
    model = model_for(np.array([[0.0] * 9, [1.0] * 9]), np.array([[0.0] * 9]))
    got = index.similar("m1", 4, model)
    assert [t["track_id"] for t in got] == ["m0", "m2", "m3", "m4"]
    assert got[0]["name"] == "song 0" and got[0]["artist_name"] == sample["artist_name"]


def test_index_messages_stay_small():
    x = np.random.default_rng(1).normal(size=(10_000, 9))
    messages = index_messages(rows(x))
    assert len(messages) == 3 and max(map(len, messages)) < 1 << 20
    index = TrackIndex()
    for value in messages:
        index.add(pa.ipc.open_stream(value).read_all())
    assert len(index) == 10_000
