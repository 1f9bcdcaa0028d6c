"""Similar tracks and a user's recommendations, from an index of every track's features.

Every worker keeps a ``TrackIndex`` of all tracks with audio features (not
only its partitions: the nearest tracks can be anywhere), fed by its
broadcast reader from the cluster trainer's input topic. A query standardizes
with the newest cluster model and searches the query point's nearest clusters:
its own first, then the next nearest by centroid until there are ``SPREAD``
candidates per requested track, so a small cluster borrows from its neighbours.
Distances are Euclidean in the model's standardized space.

Recommendations start from the user's taste: the mean standardized vector of
the recent plays that were not skipped (all recent plays, when every one was).
Candidates are ranked by distance to it divided by
``1 + POPULARITY_WEIGHT * popularity / 100``: a track of popularity 100 ranks as
if a third nearer than an unknown one at the same distance.

Results never hold the query track, a track the user played recently, or two
tracks with the same name and artist (the catalog has a song once per
release, under different ids).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from spotify_stream.ml.clustering import FEATURES, ClusterModel
from spotify_stream.ml.profiles import feature_rows, training_rows
from spotify_stream.models.codec import items_in

#: Candidates gathered from the nearest clusters per track asked for.
SPREAD = 5
POPULARITY_WEIGHT = 0.5
#: Messages of the trainer's topic held undecoded before the index reads them anyway.
_HELD_MESSAGES = 50


class NotIndexed(LookupError):
    """The track is unknown, or has no complete audio features."""


@dataclass(frozen=True)
class Played:
    track_id: str
    skipped: bool


class TrackIndex:
    """Track id -> raw features, popularity, name and artist; one row per track."""

    def __init__(self) -> None:
        self._held: list[bytes] = []  # Batch messages not yet read
        self._row: dict[str, int] = {}
        self.ids: list[str] = []
        self._names: list[str | None] = []
        self._artists: list[str | None] = []
        self._x = np.empty((0, len(FEATURES)))
        self._popularity = np.empty(0)
        self._valid = np.empty(0, dtype=bool)  # all nine features known
        # standardized rows and nearest centroids, with ``_version``'s model
        self._version: int | None = None
        self._z = np.empty((0, len(FEATURES)))
        self._labels = np.empty(0, dtype=int)
        self._changed: set[int] = set()  # rows changed since they were standardized

    def __len__(self) -> int:
        self._read_held()
        return int(self._valid.sum())

    def add_message(self, value: bytes | None) -> None:
        """A Batch message of enriched tracks (the trainer's input); read when queried."""
        if value:
            self._held.append(value)
            if len(self._held) >= _HELD_MESSAGES:
                self._read_held()

    def add(self, table: pa.Table) -> None:
        """Rows of the book's columns (``ml.profiles.BOOK_SCHEMA``); later rows win."""
        x = feature_rows(table)
        popularity = table.column("popularity").to_numpy(zero_copy_only=False)
        names = table.column("name").to_pylist()
        artists = table.column("artist_name").to_pylist()
        rows = []
        for track_id in table.column("track_id").to_pylist():
            row = self._row.get(track_id)
            if row is None:
                row = self._row[track_id] = len(self.ids)
                self.ids.append(track_id)
                self._names.append(None)
                self._artists.append(None)
            rows.append(row)
        grow = len(self.ids) - len(self._x)
        if grow:
            self._x = np.concatenate([self._x, np.full((grow, len(FEATURES)), np.nan)])
            self._popularity = np.concatenate([self._popularity, np.zeros(grow)])
            self._valid = np.concatenate([self._valid, np.zeros(grow, dtype=bool)])
        at = np.array(rows, dtype=int)
        self._x[at] = x
        self._popularity[at] = np.nan_to_num(popularity.astype(float))
        self._valid[at] = ~np.isnan(x).any(axis=1)
        for row, name, artist in zip(rows, names, artists, strict=True):
            self._names[row], self._artists[row] = name, artist
        self._changed.update(rows)

    def similar(self, track_id: str, n: int, model: ClusterModel) -> list[dict[str, Any]]:
        """The ``n`` tracks nearest to ``track_id``."""
        row = self._indexed(track_id)
        self._standardize(model)
        return self._nearest(self._z[row], n, model, [row], popularity_weight=0.0)

    def recommend(
        self, played: list[Played], n: int, model: ClusterModel
    ) -> tuple[list[dict[str, Any]], int]:
        """``n`` tracks near the taste of ``played`` (most recent last), and the number
        of plays the taste was taken from."""
        self._read_held()
        rows = [self._row.get(p.track_id) for p in played]
        known = [(r, p) for r, p in zip(rows, played, strict=True) if r is not None]
        liked = [r for r, p in known if self._valid[r] and not p.skipped] or [
            r for r, _ in known if self._valid[r]
        ]
        if not liked:
            raise NotIndexed(
                f"none of the {len(played)} recently played tracks has audio features yet"
            )
        self._standardize(model)
        taste = self._z[liked].mean(axis=0)
        exclude = [r for r, _ in known]
        return self._nearest(taste, n, model, exclude, POPULARITY_WEIGHT), len(liked)

    def _indexed(self, track_id: str) -> int:
        self._read_held()
        row = self._row.get(track_id)
        if row is None:
            raise NotIndexed(f"no track {track_id} with audio features")
        if not self._valid[row]:
            raise NotIndexed(f"track {track_id} has incomplete audio features")
        return row

    def _read_held(self) -> None:
        held, self._held = self._held, []
        for value in held:
            self.add(training_rows(items_in(value)))

    def _standardize(self, model: ClusterModel) -> None:
        """Bring ``_z`` and ``_labels`` to ``model``: all rows for a new version, else
        the changed ones."""
        if self._version != model.version:
            rows = np.arange(len(self.ids))
            self._z = np.zeros_like(self._x)
            self._labels = np.full(len(self.ids), -1)
            self._version = model.version
        else:
            rows = np.fromiter(self._changed, dtype=int, count=len(self._changed))
            grow = len(self.ids) - len(self._z)
            self._z = np.concatenate([self._z, np.zeros((grow, len(FEATURES)))])
            self._labels = np.concatenate([self._labels, np.full(grow, -1)])
        self._changed.clear()
        rows = rows[self._valid[rows]]
        if len(rows):
            self._z[rows] = model.standardize(self._x[rows])
            self._labels[rows] = model.assign(self._x[rows])[0]

    def _nearest(
        self,
        point: np.ndarray,
        n: int,
        model: ClusterModel,
        exclude: Iterable[int],
        popularity_weight: float,
    ) -> list[dict[str, Any]]:
        excluded = set(exclude)
        seen = {self._duplicate_key(r) for r in excluded}
        # the point's cluster first, then the next nearest until there are enough
        by_centroid = np.argsort(np.linalg.norm(model.centroids - point, axis=1))
        valid = self._valid & (self._labels >= 0)
        counts = np.bincount(self._labels[valid], minlength=model.k)
        wanted = SPREAD * n + len(excluded)
        reach = int(np.searchsorted(np.cumsum(counts[by_centroid]), wanted)) + 1
        candidates = np.flatnonzero(valid & np.isin(self._labels, by_centroid[:reach]))
        distance = np.linalg.norm(self._z[candidates] - point, axis=1)
        score = distance / (1 + popularity_weight * self._popularity[candidates] / 100)
        picked: list[dict[str, Any]] = []
        for i in np.argsort(score, kind="stable"):
            row = int(candidates[i])
            key = self._duplicate_key(row)
            if row in excluded or key in seen:
                continue
            seen.add(key)
            picked.append(
                {
                    "track_id": self.ids[row],
                    "name": self._names[row],
                    "artist_name": self._artists[row],
                    "popularity": int(self._popularity[row]),
                    "cluster_id": int(self._labels[row]),
                    "distance": round(float(distance[i]), 4),
                }
            )
            if len(picked) == n:
                break
        return picked

    def _duplicate_key(self, row: int) -> tuple[str, str] | str:
        name, artist = self._names[row], self._artists[row]
        if name is None or artist is None:
            return self.ids[row]  # nothing to compare: only the track itself
        return (name.casefold(), artist.casefold())
