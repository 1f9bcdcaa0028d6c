"""The cluster report: PNG files from lake-shaped tables; one clear line without clusters."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from spotify_stream.ml.clustering import FEATURES
from spotify_stream.ml.report import render
from tests.test_cli import run


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


def test_render_writes_both_charts_of_the_newest_version(tmp_path):
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
    report = render(table, pa.Table.from_pylist(tracks), tmp_path / "out")
    assert (report.version, report.k, report.tracks) == (2, 3, 150)
    assert [f.name for f in report.files] == ["clusters_projection.png", "clusters_profile.png"]
    for path in report.files:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 500 and image.height > 200


def test_report_of_a_lake_without_clusters_is_one_line(tmp_path):
    proc = run(
        "report", "--out", "r", cwd=tmp_path, env={"SPOTIFY_STREAM_LAKE": f"file://{tmp_path}"}
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: the lake at file://")
    assert "has no clusters yet" in proc.stderr


def test_no_complete_track_is_an_error(tmp_path):
    table = pa.Table.from_pylist(profiles(1, 1, np.array([[0.5] * 9])))
    tracks = pa.Table.from_pylist(
        [{"track_id": "a", **dict.fromkeys(FEATURES)}],
        schema=pa.schema([("track_id", pa.string()), *((f, pa.float64()) for f in FEATURES)]),
    )
    with pytest.raises(ValueError, match="all nine audio features"):
        render(table, tracks, tmp_path)
