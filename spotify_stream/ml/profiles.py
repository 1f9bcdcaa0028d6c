"""What the trainer remembers of each track it learned from: the clusters dataset's source.

A published model version comes with the profile of each of its clusters,
computed over every track the trainer has seen (the latest version of each),
assigned with that version: size, mean of each feature, most frequent genres,
most popular tracks. The book holds the rows as the trainer read them (Arrow
columns, a few hundred bytes a track) and does the grouping with polars, so a
version's profiles cost no Python per track.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from spotify_stream.ml.clustering import FEATURES, ClusterModel
from spotify_stream.models import codec_for
from spotify_stream.models.block import BlockError, read_block
from spotify_stream.models.wire import HEADER_SIZE

TOP = 5
#: The columns a book holds (from the enriched track), typed as a block read gives them.
BOOK_SCHEMA = pa.schema(
    [
        ("track_id", pa.large_string()),
        ("name", pa.large_string()),
        ("artist_name", pa.large_string()),
        ("popularity", pa.int32()),
        ("genres", pa.large_list(pa.large_string())),
        *((f, pa.float64()) for f in FEATURES),
    ]
)
COLUMNS = tuple(BOOK_SCHEMA.names)


def training_rows(items: list[bytes]) -> pa.Table:
    """Enriched tracks (single-object encoded) as the book's columns: one block read
    when all are of the current schema, else one by one."""
    codec = codec_for("EnrichedTrack")
    if all(item[2:HEADER_SIZE] == codec.fingerprint for item in items):
        try:
            return read_block(items, "EnrichedTrack", COLUMNS)
        except BlockError:
            pass  # decoded one by one below, which names the bad body
    return pa.Table.from_pylist(
        [{c: r.get(c) for c in COLUMNS} for r in map(codec.decode, items)],
        schema=BOOK_SCHEMA,
    )


def feature_rows(table: pa.Table) -> np.ndarray:
    """The features of ``table`` as an (n, 9) float array, NaN where missing."""
    return np.column_stack(
        [table.column(f).to_numpy(zero_copy_only=False).astype(float) for f in FEATURES]
    ).reshape(table.num_rows, len(FEATURES))


class TrackBook:
    def __init__(self) -> None:
        self._chunks: list[pa.Table] = []

    def add(self, table: pa.Table) -> None:
        """Remember the tracks of ``table`` (a later row of a track replaces earlier ones)."""
        self._chunks.append(table.select(COLUMNS).cast(BOOK_SCHEMA))

    def profiles(self, model: ClusterModel, published_at: int) -> list[dict[str, Any]]:
        """One ClusterProfile record per cluster of ``model`` (compacts the book)."""
        import polars as pl

        if not self._chunks:
            return [_profile(model, c, published_at, 0, {}, [], [], []) for c in range(model.k)]
        tracks = pl.from_arrow(pa.concat_tables(self._chunks)).unique(
            subset="track_id", keep="last", maintain_order=True
        )
        self._chunks = [tracks.to_arrow()]
        x = feature_rows(self._chunks[0])
        complete = ~np.isnan(x).any(axis=1)
        labels = np.full(len(x), -1)
        if complete.any():
            labels[complete] = model.assign(x[complete])[0]
        tracks = tracks.with_columns(cluster=pl.Series(labels))
        stats = {
            row["cluster"]: row
            for row in tracks.group_by("cluster")
            .agg(pl.len().alias("size"), *(pl.col(f).mean() for f in FEATURES))
            .to_dicts()
        }
        genres = (
            tracks.select("cluster", "genres")
            .explode("genres")
            .drop_nulls("genres")
            .group_by("cluster", "genres")
            .len()
            # most frequent first; ties by name, so every run agrees
            .sort(["cluster", "len", "genres"], descending=[False, True, False])
            .group_by("cluster", maintain_order=True)
            .head(TOP)
        )
        top = (
            tracks.sort(["popularity", "track_id"], descending=[True, False], nulls_last=True)
            .group_by("cluster", maintain_order=True)
            .head(TOP)
        )
        records = []
        for cluster in range(model.k):
            row = stats.get(cluster, {})
            best = top.filter(pl.col("cluster") == cluster)
            records.append(
                _profile(
                    model,
                    cluster,
                    published_at,
                    row.get("size", 0),
                    row,
                    genres.filter(pl.col("cluster") == cluster)["genres"].to_list(),
                    best["track_id"].to_list(),
                    best["name"].to_list(),
                )
            )
        return records


def _profile(
    model: ClusterModel,
    cluster: int,
    published_at: int,
    size: int,
    means: dict[str, Any],
    genres: list[str],
    ids: list[str],
    names: list[str | None],
) -> dict[str, Any]:
    return {
        "model_version": model.version,
        "cluster_id": cluster,
        "k": model.k,
        "published_at": published_at,
        "size": size,
        **{f: means.get(f) for f in FEATURES},
        "top_genres": genres,
        "top_track_ids": ids,
        "top_track_names": names,
    }
