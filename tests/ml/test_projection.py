"""The cluster map: the newest version's clusters, each track's latest row projected."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from spotify_stream.ml.clustering import FEATURES
from spotify_stream.ml.projection import cluster_map


def profiles(version: int, k: int, centers: np.ndarray) -> list[dict]:
    return [
        {
            "model_version": version,
            "cluster_id": c,
            "k": k,
            "size": 100,
            **dict(zip(FEATURES, map(float, centers[c]), strict=True)),
            "top_genres": ["pop", "rock"],
        }
        for c in range(k)
    ]


def test_the_newest_version_and_each_tracks_latest_row():
    rng = np.random.default_rng(0)
    centers = np.array([[0.2] * 9, [0.8] * 9, [0.5] * 9])
    x = np.concatenate([c + rng.normal(scale=0.05, size=(50, 9)) for c in centers])
    tracks = [
        {"track_id": f"t{i}", **dict(zip(FEATURES, map(float, row), strict=True))}
        for i, row in enumerate(x)
    ]
    tracks += [{"track_id": "t0", **dict.fromkeys(FEATURES, 0.5)}]  # a later version of t0
    tracks += [{"track_id": "partial", **dict.fromkeys(FEATURES, 0.5), "tempo": None}]
    table = pa.Table.from_pylist([*profiles(1, 2, centers), *profiles(2, 3, centers)])
    m = cluster_map(table, pa.Table.from_pylist(tracks), points=100)
    assert (m.version, len(m.profiles), m.tracks) == (2, 3, 150)
    assert len(m.xy) == len(m.labels) == 100 and m.ids.tolist() == [0, 1, 2]
    assert m.explained.sum() <= 100 and m.explained[0] >= m.explained[1]
    # the three generated groups are the three clusters; t0's latest row is group 2's mean
    full = cluster_map(table, pa.Table.from_pylist(tracks))
    assert len(full.labels) == 150
    assert full.means.shape == (3, 9)
    assert [p[:2] for p in full.profiles] == [(0, 100), (1, 100), (2, 100)]


def test_no_complete_track_is_an_error(tmp_path):
    table = pa.Table.from_pylist(profiles(1, 1, np.array([[0.5] * 9])))
    tracks = pa.Table.from_pylist(
        [{"track_id": "a", **dict.fromkeys(FEATURES)}],
        schema=pa.schema([("track_id", pa.string()), *((f, pa.float64()) for f in FEATURES)]),
    )
    with pytest.raises(ValueError, match="all nine audio features"):
        cluster_map(table, tracks)
