"""Similar tracks and a user's recommendations, from an index of every track's features.

Every worker keeps a ``TrackIndex`` of all tracks with audio features (not
only its partitions: the nearest tracks can be anywhere), fed by its
broadcast reader from ``<app_id>-track-index``: the cluster trainer decodes
the enriched tracks once, and publishes the columns the index holds as Arrow
IPC, which every worker reads at almost no cost. A query standardizes
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

import asyncio
import logging
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from spotify_stream.ml.clustering import FEATURES, ClusterModel
from spotify_stream.ml.profiles import BOOK_SCHEMA, feature_rows

log = logging.getLogger(__name__)

#: Candidates gathered from the nearest clusters per track asked for.
SPREAD = 5
POPULARITY_WEIGHT = 0.5
#: Bytes of the trainer's messages held before the index's thread reads them.
_HELD_BYTES = 16 << 20
#: The columns of an index message: the book's, so a trainer that starts rebuilds its
#: book from the index topic (the index itself reads all but the genres).
INDEX_COLUMNS = list(BOOK_SCHEMA.names)
#: Rows per index message: well under a megabyte.
_ROWS_PER_MESSAGE = 4000


def index_messages(table: pa.Table) -> list[bytes]:
    """Rows of the book's columns as index messages: Arrow IPC streams."""
    messages = []
    for batch in table.select(INDEX_COLUMNS).to_batches(max_chunksize=_ROWS_PER_MESSAGE):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        messages.append(sink.getvalue().to_pybytes())
    return messages


def index_table(value: bytes) -> pa.Table | None:
    """The rows of an index message; None (logged) for one that does not read."""
    try:
        return pa.ipc.open_stream(value).read_all()
    except pa.ArrowInvalid as exc:  # only the trainer writes there
        log.warning("track index: skipping an unreadable message: %s", exc)
        return None


class NotIndexed(LookupError):
    """The track is unknown, or has no complete audio features."""


@dataclass(frozen=True)
class Played:
    track_id: str
    skipped: bool


class TrackIndex:
    """Track id -> raw features, popularity, name and artist; one row per track.

    Reading the trainer's messages (polars, then numpy) happens on a thread of its
    own, off the worker's event loop: every enriched track passes through here,
    and on the loop it took a sixth of the enrichment's time. A lock keeps a query
    and a read apart; ``read`` waits for what arrived before the query.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="track-index")
        self._held: list[bytes] = []  # Batch messages not yet handed to the thread
        self._held_bytes = 0
        self._reading: list[Future[None]] = []
        self._row: dict[str, int] = {}
        self.ids: list[str] = []
        self._names = np.empty(0, dtype=object)
        self._artists = np.empty(0, dtype=object)
        self._x = np.empty((0, len(FEATURES)))
        self._popularity = np.empty(0)
        self._valid = np.empty(0, dtype=bool)  # all nine features known
        self._changed = np.empty(0, dtype=bool)  # since last standardized
        # standardized rows and nearest centroids, with ``_version``'s model
        self._version: int | None = None
        self._z = np.empty((0, len(FEATURES)))
        self._labels = np.empty(0, dtype=int)

    def __len__(self) -> int:
        return int(self._valid.sum())

    def add_message(self, value: bytes | None) -> None:
        """An index message (``index_messages``)."""
        if value:
            self._held.append(value)
            self._held_bytes += len(value)
            if self._held_bytes >= _HELD_BYTES:
                self._hand_over()

    async def read(self) -> None:
        """Wait until every message added so far is in the index."""
        self._hand_over()
        reading, self._reading = self._reading, []
        for future in reading:
            await asyncio.wrap_future(future)

    def _hand_over(self) -> None:
        if self._held:
            held, self._held, self._held_bytes = self._held, [], 0
            self._reading = [f for f in self._reading if not f.done()]
            self._reading.append(self._pool.submit(self._read, held))

    def _read(self, held: list[bytes]) -> None:
        for value in held:
            table = index_table(value)
            if table is not None:
                self.add(table)

    def add(self, table: pa.Table) -> None:
        """Rows of ``INDEX_COLUMNS``; later rows win."""
        with self._lock:
            self._add(table)

    def _add(self, table: pa.Table) -> None:
        rows = np.empty(table.num_rows, dtype=np.int64)
        for i, track_id in enumerate(table.column("track_id").to_pylist()):
            row = self._row.get(track_id)
            if row is None:
                row = self._row[track_id] = len(self.ids)
                self.ids.append(track_id)
            rows[i] = row
        grow = len(self.ids) - len(self._x)
        if grow:
            self._x = np.concatenate([self._x, np.full((grow, len(FEATURES)), np.nan)])
            self._popularity = np.concatenate([self._popularity, np.zeros(grow)])
            self._valid = np.concatenate([self._valid, np.zeros(grow, dtype=bool)])
            self._changed = np.concatenate([self._changed, np.zeros(grow, dtype=bool)])
            self._names = np.concatenate([self._names, np.full(grow, None, dtype=object)])
            self._artists = np.concatenate([self._artists, np.full(grow, None, dtype=object)])
        # the last row of a track that comes twice
        _, from_end = np.unique(rows[::-1], return_index=True)
        last = len(rows) - 1 - from_end
        at = rows[last]
        x = feature_rows(table)[last]
        popularity = table.column("popularity").to_numpy(zero_copy_only=False).astype(float)
        self._x[at] = x
        self._popularity[at] = np.nan_to_num(popularity[last])
        self._valid[at] = ~np.isnan(x).any(axis=1)
        self._changed[at] = True
        self._names[at] = table.column("name").to_numpy(zero_copy_only=False)[last]
        self._artists[at] = table.column("artist_name").to_numpy(zero_copy_only=False)[last]

    def similar(self, track_id: str, n: int, model: ClusterModel) -> list[dict[str, Any]]:
        """The ``n`` tracks nearest to ``track_id``."""
        with self._lock:
            row = self._indexed(track_id)
            self._standardize(model)
            return self._nearest(self._z[row], n, model, [row], popularity_weight=0.0)

    def recommend(
        self, played: list[Played], n: int, model: ClusterModel
    ) -> tuple[list[dict[str, Any]], int]:
        """``n`` tracks near the taste of ``played`` (most recent last), and the number
        of plays the taste was taken from."""
        with self._lock:
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
        row = self._row.get(track_id)
        if row is None:
            raise NotIndexed(f"no track {track_id} with audio features")
        if not self._valid[row]:
            raise NotIndexed(f"track {track_id} has incomplete audio features")
        return row

    def _standardize(self, model: ClusterModel) -> None:
        """Bring ``_z`` and ``_labels`` to ``model``: all rows for a new version, else
        the changed ones."""
        if self._version != model.version:
            rows = np.arange(len(self.ids))
            self._z = np.zeros_like(self._x)
            self._labels = np.full(len(self.ids), -1)
            self._version = model.version
        else:
            rows = np.flatnonzero(self._changed)
            grow = len(self.ids) - len(self._z)
            self._z = np.concatenate([self._z, np.zeros((grow, len(FEATURES)))])
            self._labels = np.concatenate([self._labels, np.full(grow, -1)])
        self._changed[:] = False
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
