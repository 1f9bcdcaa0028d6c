"""The cluster analysis as PNG, from the lake: ``clusters`` and ``tracks_enriched``.

Two charts of the newest model version in the lake:

- ``clusters_projection.png``: every track (the latest row of each, with all
  nine features; a random 20,000 when there are more) on the first two
  principal components of its standardized features, coloured by cluster;
  the cluster means marked with their numbers.
- ``clusters_profile.png``: each cluster's mean of each feature, in standard
  deviations from the mean of all tracks, with its size and top genres.

The lake holds each version's profiles, not its scaler and centroids, so a
track is coloured by the nearest cluster mean of the newest version (k-means
centroids are the means of their tracks; this differs from the model's own
assignment only near the borders). Standardized here by the tracks' own mean
and deviation.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from spotify_stream.errors import UserError
from spotify_stream.ml.clustering import FEATURES
from spotify_stream.settings import Settings
from spotify_stream.sink.objects import read_dataset
from spotify_stream.sink.storage import storage_for

MAX_POINTS = 20_000
#: The enriched track columns the report reads.
TRACK_COLUMNS = ["track_id", *FEATURES]


@dataclass(frozen=True)
class ClusterReport:
    version: int
    k: int
    tracks: int
    files: list[Path]


def render(profiles: pa.Table, tracks: pa.Table, out: Path) -> ClusterReport:
    """Write the charts of the newest version of ``profiles`` into ``out``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in CI
    import matplotlib.pyplot as plt
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

    out.mkdir(parents=True, exist_ok=True)
    colours = plt.get_cmap("tab10" if len(newest) <= 10 else "tab20")
    pca = PCA(n_components=2, random_state=0).fit(z)
    shown = np.random.default_rng(0).permutation(len(z))[:MAX_POINTS]
    xy, centers_xy = pca.transform(z[shown]), pca.transform(centers)
    fig, ax = plt.subplots(figsize=(9, 7))
    for cluster in ids:
        at = labels[shown] == cluster
        ax.scatter(*xy[at].T, s=4, alpha=0.5, color=colours(cluster % colours.N), label=cluster)
    for cluster, (cx, cy) in zip(ids, centers_xy, strict=True):
        ax.annotate(str(cluster), (cx, cy), ha="center", va="center", weight="bold")
    explained = pca.explained_variance_ratio_ * 100
    ax.set_xlabel(f"PC 1 ({explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0f}% of variance)")
    ax.set_title(
        f"{len(z):,} tracks by audio features, model version {version} (k={len(newest)})"
        + (f", {len(shown):,} shown" if len(shown) < len(z) else "")
    )
    ax.legend(title="cluster", markerscale=4, loc="best", fontsize="small")
    projection = out / "clusters_projection.png"
    fig.savefig(projection, dpi=110, bbox_inches="tight")
    plt.close(fig)

    all_centers = (newest.select(FEATURES).to_numpy().astype(float) - mean) / scale
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.55 * len(newest)))
    limit = max(1.0, float(np.nanmax(np.abs(all_centers))))
    image = ax.imshow(all_centers, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for (row, col), value in np.ndenumerate(all_centers):
        if not np.isnan(value):
            ax.text(col, row, f"{value:+.1f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(FEATURES)), FEATURES, rotation=30, ha="right")
    ax.set_yticks(
        range(len(newest)),
        [
            f"{c}: {size:,} tracks" + (f" ({', '.join(genres[:2])})" if genres else "")
            for c, size, genres in newest.select("cluster_id", "size", "top_genres").iter_rows()
        ],
    )
    ax.set_title(f"Cluster feature means, standard deviations from all tracks (version {version})")
    fig.colorbar(image, ax=ax, shrink=0.8)
    profile = out / "clusters_profile.png"
    fig.savefig(profile, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return ClusterReport(version, len(newest), len(z), [projection, profile])


async def from_lake(settings: Settings, out: Path) -> ClusterReport:
    """Read the lake's clusters and enriched tracks, and render them into ``out``."""
    storage = storage_for(settings)
    try:
        profiles = await read_dataset(storage, "clusters")
        tracks = await read_dataset(storage, "tracks_enriched", TRACK_COLUMNS)
    finally:
        await storage.close()
    if profiles is None or tracks is None:
        raise UserError(
            f"the lake at {storage.url} has no clusters yet: run a worker (or "
            "`spotify-stream demo`) until the cluster trainer has published a model"
        )
    try:
        return await asyncio.to_thread(render, profiles, tracks, out)
    except ValueError as exc:
        raise UserError(f"no cluster report from {storage.url}: {exc}") from None
