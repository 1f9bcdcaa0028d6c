"""The online model against a batch k-means of the same rows, and its snapshots."""

import csv

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.preprocessing import StandardScaler

from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.sources import FEATURES_FILE
from spotify_stream.ml.clustering import FEATURES, ClusterModel, OnlineClusterer


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> np.ndarray:
    """Audio features of 10,000 generated tracks (nine genre groups), in file order."""
    out = tmp_path_factory.mktemp("generated")
    generate(out, 10_000, seed=3, anomalies=0)
    with open(out / FEATURES_FILE, newline="", encoding="utf-8") as f:
        return np.array([[float(row[n]) for n in FEATURES] for row in csv.DictReader(f)])


def stream(clusterer: OnlineClusterer, x: np.ndarray, batch: int) -> None:
    for start in range(0, len(x), batch):
        clusterer.partial_fit(x[start : start + batch])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_online_model_agrees_with_batch_kmeans(features: np.ndarray, seed: int) -> None:
    x = features[np.random.default_rng(seed).permutation(len(features))]  # arrival order
    online = OnlineClusterer(k=8, warmup=1000, seed=seed)
    stream(online, x, 500)
    labels, distances = online.snapshot().assign(x)

    z = StandardScaler().fit_transform(x)
    batch = KMeans(8, n_init=10, random_state=0).fit_predict(z)
    ari = adjusted_rand_score(batch, labels)
    silhouettes = (silhouette_score(z, labels), silhouette_score(z, batch))
    print(
        f"seed {seed}: ARI {ari:.3f}, silhouette online {silhouettes[0]:.3f} batch {silhouettes[1]:.3f}"
    )
    assert ari >= 0.8
    assert silhouettes[0] >= silhouettes[1] - 0.05
    # the distance is to the assigned centroid, the nearest one
    model = online.snapshot()
    nearest = np.linalg.norm(model.standardize(x[:50])[:, None] - model.centroids[None], axis=2)
    assert np.allclose(distances[:50], nearest.min(axis=1))


def test_warmup_and_missing_features() -> None:
    clusterer = OnlineClusterer(k=3, warmup=10)
    rows = np.random.default_rng(0).normal(size=(9, len(FEATURES)))
    assert not clusterer.partial_fit(rows)  # 9 rows: still warming up
    assert not clusterer.fitted
    with_gap = np.random.default_rng(1).normal(size=(2, len(FEATURES)))
    with_gap[1, 4] = np.nan
    assert clusterer.partial_fit(with_gap)  # the 10th complete row starts the model
    assert clusterer.fitted and clusterer.rows_seen == 10


def test_snapshot_round_trip_and_resume(features: np.ndarray) -> None:
    """A resumed trainer continues the version and learns as the original would."""
    first, rest = features[:4000], features[4000:]
    original = OnlineClusterer(k=8, warmup=1000, seed=5)
    stream(original, first, 500)
    published = original.snapshot()
    record = published.to_record()
    assert ClusterModel.from_record(record).to_record() == record

    resumed = OnlineClusterer.resume(ClusterModel.from_record(record), warmup=1000, seed=5)
    for clusterer in (original, resumed):
        stream(clusterer, rest, 500)
    a, b = original.snapshot(), resumed.snapshot()
    assert a.version == b.version == published.version + 1
    assert a.rows_seen == b.rows_seen == len(features)
    assert np.allclose(a.mean, b.mean) and np.allclose(a.var, b.var)
    assert adjusted_rand_score(a.assign(features)[0], b.assign(features)[0]) >= 0.95


def test_model_of_other_features_is_refused() -> None:
    record = OnlineClusterer(k=2, warmup=2)
    record.partial_fit(np.random.default_rng(0).normal(size=(4, len(FEATURES))))
    data = record.snapshot().to_record() | {"features": ["tempo"]}
    with pytest.raises(ValueError, match="expected"):
        ClusterModel.from_record(data)


def test_a_quiet_stream_starts_the_model_before_the_warm_up(features: np.ndarray) -> None:
    clusterer = OnlineClusterer(k=8, warmup=1000)
    stream(clusterer, features[:300], 100)
    assert not clusterer.fitted and clusterer.waiting == 300
    assert clusterer.start()
    model = clusterer.snapshot()
    assert model.rows_seen == 300 and model.version == 1
    # the same start as a full warm-up of those rows
    full = OnlineClusterer(k=8, warmup=300)
    stream(full, features[:300], 100)
    assert np.allclose(full.snapshot().centroids, model.centroids)
    # fewer distinct rows than clusters: no model
    few = OnlineClusterer(k=8, warmup=1000)
    few.partial_fit(np.repeat(features[:5], 20, axis=0))
    assert not few.start() and not few.fitted
