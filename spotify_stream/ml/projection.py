"""The cluster map, from the lake: every track of ``tracks_enriched`` (the latest row of
each, with all nine features) on the first two principal components of its
standardized features, by cluster of the newest model version in ``clusters``.

The lake holds each version's profiles, not its scaler and centroids, so a
track takes the nearest cluster mean of the newest version (k-means centroids
are the means of their tracks; this differs from the model's own assignment
only near the borders), standardized by the tracks' own mean and deviation.
The dashboard and the report draw it (``dashboard``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from spotify_stream.ml.clustering import FEATURES

MAX_POINTS = 20_000
#: The enriched track columns the report reads.
TRACK_COLUMNS = ["track_id", *FEATURES]


@dataclass(frozen=True)
class ClusterMap:
    """The newest model version's clusters and tracks, standardized and projected."""

    version: int
    ids: np.ndarray  # cluster ids with tracks, in order
    labels: np.ndarray  # each shown track's cluster
    xy: np.ndarray  # the shown tracks on the first two principal components
    centers_xy: np.ndarray  # the means of ``ids`` on them
    explained: np.ndarray  # percent of variance of each component
    tracks: int  # tracks with all features (shown: a random MAX_POINTS of them)
    profiles: list[tuple[int, int, list[str]]]  # every cluster: (id, size, top genres)
    means: np.ndarray  # every cluster's feature means, standard deviations from all tracks


def cluster_map(profiles: pa.Table, tracks: pa.Table, points: int = MAX_POINTS) -> ClusterMap:
    """Project the latest row of each track; ValueError when no track has all features."""
    import polars as pl
    from sklearn.decomposition import PCA

    version = pl.from_arrow(profiles)["model_version"].max()
    newest = (
        pl.from_arrow(profiles)
        .filter(pl.col("model_version") == version)
        .unique("cluster_id", keep="last")
        .sort("cluster_id")
    )
    latest = (
        pl.from_arrow(tracks.select(TRACK_COLUMNS))
        .unique("track_id", keep="last", maintain_order=True)
        .drop_nulls(list(FEATURES))
    )
    if latest.is_empty():
        raise ValueError("no track in the lake has all nine audio features")
    x = latest.select(FEATURES).to_numpy().astype(float)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    sized = newest.filter(pl.col("size") > 0)
    centers = (sized.select(FEATURES).to_numpy().astype(float) - mean) / scale
    ids = sized["cluster_id"].to_numpy()
    labels = ids[np.linalg.norm(z[:, None, :] - centers[None], axis=2).argmin(axis=1)]
    pca = PCA(n_components=2, random_state=0).fit(z)
    shown = np.random.default_rng(0).permutation(len(z))[:points]
    return ClusterMap(
        version=int(version),
        ids=ids,
        labels=labels[shown],
        xy=pca.transform(z[shown]),
        centers_xy=pca.transform(centers),
        explained=pca.explained_variance_ratio_ * 100,
        tracks=len(z),
        profiles=[
            (c, size, list(genres or ()))
            for c, size, genres in newest.select("cluster_id", "size", "top_genres").iter_rows()
        ],
        means=(newest.select(FEATURES).to_numpy().astype(float) - mean) / scale,
    )
