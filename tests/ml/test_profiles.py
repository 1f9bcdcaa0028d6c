"""Cluster profiles against a plain-Python computation over the same tracks."""

from collections import Counter

import numpy as np
import pyarrow as pa

from spotify_stream.ml.clustering import FEATURES, OnlineClusterer
from spotify_stream.ml.profiles import BOOK_SCHEMA, TOP, TrackBook, feature_rows


def tracks(n: int, seed: int, prefix: str = "t") -> list[dict]:
    rng = np.random.default_rng(seed)
    genres = ["pop", "rock", "jazz", "metal", "folk", "k-pop", "ambient"]
    rows = []
    for i in range(n):
        centre = 3.0 * (i % 3)  # three groups
        rows.append(
            {
                "track_id": f"{prefix}{i}",
                "name": None if i % 7 == 0 else f"Song {i}",
                "popularity": None if i % 11 == 0 else int(rng.integers(0, 100)),
                "genres": list(rng.choice(genres, size=int(rng.integers(0, 3)), replace=False)),
                **{f: float(centre + rng.normal()) for f in FEATURES},
            }
        )
    rows[5]["tempo"] = None  # no complete features: in no cluster
    return rows


def test_profiles_equal_a_direct_computation() -> None:
    rows = tracks(600, 1)
    later = dict(rows[10], popularity=100, name="Remastered")  # a later version of a track
    model_maker = OnlineClusterer(k=3, warmup=100)
    model_maker.partial_fit(feature_rows(pa.Table.from_pylist(rows, schema=BOOK_SCHEMA)))
    model = model_maker.snapshot()

    book = TrackBook()
    book.add(pa.Table.from_pylist(rows[:300], schema=BOOK_SCHEMA))
    book.add(pa.Table.from_pylist([*rows[300:], later], schema=BOOK_SCHEMA))
    profiles = book.profiles(model, published_at=1234)

    current = {r["track_id"]: r for r in rows} | {later["track_id"]: later}
    members: dict[int, list[dict]] = {c: [] for c in range(3)}
    for row in current.values():
        if all(row[f] is not None for f in FEATURES):
            label = model.assign(np.array([[row[f] for f in FEATURES]]))[0][0]
            members[int(label)].append(row)
    assert [p["cluster_id"] for p in profiles] == [0, 1, 2]
    for profile in profiles:
        group = members[profile["cluster_id"]]
        assert profile["model_version"] == model.version and profile["published_at"] == 1234
        assert profile["size"] == len(group)
        for f in FEATURES:
            assert np.isclose(profile[f], np.mean([r[f] for r in group]))
        counts = Counter(g for r in group for g in r["genres"])
        assert profile["top_genres"] == [
            g for g, _ in sorted(counts.items(), key=lambda i: (-i[1], i[0]))[:TOP]
        ]
        ranked = sorted(
            group,
            key=lambda r: (r["popularity"] is None, -(r["popularity"] or 0), r["track_id"]),
        )[:TOP]
        assert profile["top_track_ids"] == [r["track_id"] for r in ranked]
        assert profile["top_track_names"] == [r["name"] for r in ranked]
    assert sum(p["size"] for p in profiles) == len(current) - 1  # the one without tempo
    assert "Remastered" in [n for p in profiles for n in p["top_track_names"]]


def test_an_empty_book_has_empty_profiles() -> None:
    maker = OnlineClusterer(k=2, warmup=2)
    maker.partial_fit(np.random.default_rng(0).normal(size=(4, len(FEATURES))))
    profiles = TrackBook().profiles(maker.snapshot(), published_at=0)
    assert [(p["cluster_id"], p["size"], p["top_genres"]) for p in profiles] == [
        (0, 0, []),
        (1, 0, []),
    ]
