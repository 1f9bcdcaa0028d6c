"""Online clustering of tracks by audio features, and the model snapshot workers share.

One trainer (``agents.clustering``) feeds micro-batches of feature rows to
``OnlineClusterer``: scikit-learn's ``StandardScaler.partial_fit`` learns the
means and variances, ``MiniBatchKMeans.partial_fit`` the centroids in the
standardized space. What it publishes is a ``ClusterModel``: plain arrays,
versioned, enough to assign (scaler and centroids) and enough for a restarted
trainer to continue where the last one stopped (per-centroid counts, steps).
No pickles on the wire: the snapshot is an Avro record like every other value.

The first fit waits for ``warmup`` rows, so the scaler the centroids were
placed with is not one estimated from a handful of tracks.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The standardized audio features, in this order everywhere (model arrays, reports).
FEATURES = (
    "danceability",
    "energy",
    "loudness",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
)


#: A track's features as stored beside its features part: 9 little-endian doubles
#: (NaN where missing), so a batch of tracks becomes a matrix without decoding Avro.
VECTOR = struct.Struct(f"<{len(FEATURES)}d")


def pack_vector(record: dict[str, Any]) -> bytes:
    return VECTOR.pack(*(np.nan if record.get(f) is None else record[f] for f in FEATURES))


def unpack_vectors(packed: list[bytes]) -> np.ndarray:
    """Packed vectors as an (n, 9) array."""
    return np.frombuffer(b"".join(packed), dtype="<f8").reshape(len(packed), len(FEATURES))


@dataclass(frozen=True)
class ClusterModel:
    """A published model version: every worker assigns with the same one."""

    version: int
    k: int
    rows_seen: int
    mean: np.ndarray  # per feature, of the scaler
    var: np.ndarray
    centroids: np.ndarray  # (k, 9), standardized space
    counts: np.ndarray  # rows each centroid has absorbed (its learning rate)
    steps: int  # mini-batches fitted

    @property
    def scale(self) -> np.ndarray:
        scale = np.sqrt(self.var)
        return np.where(scale == 0, 1.0, scale)  # as StandardScaler: constant features stay

    def standardize(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale

    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid and the Euclidean distance to it, per row of raw features."""
        z = self.standardize(x)
        # |z - c|^2 expanded: an (n, k) matrix, not the (n, k, 9) of differences
        squared = (
            (z**2).sum(axis=1)[:, None]
            - 2 * z @ self.centroids.T
            + (self.centroids**2).sum(axis=1)[None, :]
        )
        labels = squared.argmin(axis=1)
        return labels, np.sqrt(np.maximum(squared[np.arange(len(z)), labels], 0.0))

    def to_record(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "k": self.k,
            "rows_seen": self.rows_seen,
            "features": list(FEATURES),
            "mean": self.mean.tolist(),
            "var": self.var.tolist(),
            "centroids": [row.tolist() for row in self.centroids],
            "counts": self.counts.tolist(),
            "steps": self.steps,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ClusterModel:
        if tuple(record["features"]) != FEATURES:
            raise ValueError(f"model of features {record['features']}, expected {FEATURES}")
        return cls(
            version=record["version"],
            k=record["k"],
            rows_seen=record["rows_seen"],
            mean=np.array(record["mean"], dtype=float),
            var=np.array(record["var"], dtype=float),
            centroids=np.array(record["centroids"], dtype=float).reshape(record["k"], -1),
            counts=np.array(record["counts"], dtype=float),
            steps=record["steps"],
        )


class OnlineClusterer:
    """The trainer's state: a scaler and mini-batch k-means, both fitted incrementally."""

    def __init__(self, k: int, warmup: int, seed: int = 0) -> None:
        # scikit-learn (1 s to import): a worker imported it first (``runtime.import_early``)
        from sklearn.cluster import MiniBatchKMeans
        from sklearn.preprocessing import StandardScaler

        self.k = k
        self.warmup = max(warmup, k)
        self.seed = seed
        self.version = 0
        self.rows_seen = 0
        self.scaler = StandardScaler()
        self.kmeans = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=1)
        self._waiting: list[np.ndarray] = []  # rows before the first fit

    @property
    def fitted(self) -> bool:
        return hasattr(self.kmeans, "cluster_centers_")

    def partial_fit(self, x: np.ndarray) -> bool:
        """Learn from a micro-batch (rows with a missing feature are left out); whether
        the model changed."""
        x = x[~np.isnan(x).any(axis=1)]
        if not len(x):
            return False
        if not self.fitted:
            self._waiting.append(x)
            if self.waiting < self.warmup:
                return False
            return self.start()
        self.scaler.partial_fit(x)
        self.kmeans.partial_fit(self.scaler.transform(x))
        self.rows_seen += len(x)
        return True

    @property
    def waiting(self) -> int:
        """Rows held for the first fit."""
        return sum(len(w) for w in self._waiting)

    def start(self) -> bool:
        """The first fit, from the rows waiting: at the warm-up, or earlier when the
        stream went quiet (a small catalog); it needs at least ``k`` distinct rows."""
        if self.fitted or not self._waiting:
            return False
        x = np.concatenate(self._waiting)
        if len(np.unique(x, axis=0)) < self.k:
            return False
        self._waiting = []
        self.scaler.partial_fit(x)
        # Centroids placed by a full k-means of the warm-up rows: mini-batch steps
        # from k-means++ seeds settle in worse local optima (ARI 0.6 against 0.9).
        from sklearn.cluster import KMeans

        start = KMeans(self.k, n_init=4, random_state=self.seed).fit(self.scaler.transform(x))
        self.kmeans.set_params(init=start.cluster_centers_)
        self.kmeans.partial_fit(self.scaler.transform(x))
        self.rows_seen += len(x)
        return True

    def snapshot(self) -> ClusterModel:
        """The next version of the model (call after a fit changed it)."""
        assert self.fitted, "nothing fitted yet"
        self.version += 1
        return ClusterModel(
            version=self.version,
            k=self.k,
            rows_seen=self.rows_seen,
            mean=self.scaler.mean_.copy(),
            var=self.scaler.var_.copy(),
            centroids=self.kmeans.cluster_centers_.copy(),
            counts=self.kmeans._counts.copy(),
            steps=self.kmeans.n_steps_,
        )

    @classmethod
    def resume(cls, model: ClusterModel, warmup: int, seed: int = 0) -> OnlineClusterer:
        """A trainer continuing from a published model, as the one that published it.

        scikit-learn has no public way to continue ``partial_fit`` from saved
        arrays; these are the attributes its ``partial_fit`` reads (pinned
        version, checked by a test that a resumed model learns like the original).
        """
        clusterer = cls(model.k, warmup, seed)
        clusterer.version, clusterer.rows_seen = model.version, model.rows_seen
        scaler = clusterer.scaler
        scaler.mean_, scaler.var_, scaler.scale_ = model.mean.copy(), model.var.copy(), model.scale
        scaler.n_samples_seen_ = np.int64(model.rows_seen)
        scaler.n_features_in_ = len(FEATURES)
        kmeans = clusterer.kmeans
        kmeans.cluster_centers_ = model.centroids.copy()
        kmeans._counts = model.counts.copy()
        kmeans.n_steps_ = model.steps
        kmeans._n_since_last_reassign = 0
        kmeans._batch_size = min(kmeans.batch_size, clusterer.warmup)  # as of the first fit
        kmeans._random_state = np.random.RandomState(seed + model.version)
        kmeans.n_features_in_ = len(FEATURES)
        kmeans._n_threads = 1
        return clusterer
