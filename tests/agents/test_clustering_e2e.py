"""The cluster trainer and the assignment on the embedded broker: published versions,
every enriched track labelled by the version it names, two workers, a killed trainer."""

from __future__ import annotations

import asyncio
import signal

import numpy as np
import pytest

from spotify_stream import topics
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.producer import produce
from spotify_stream.ml.clustering import FEATURES, ClusterModel
from spotify_stream.models import codec_for
from tests.agents.test_enrichment_e2e import enriched_by_key
from tests.agents.test_workers_e2e import split
from tests.conftest import GENERATED_TRACKS, consume_all, produce_both_forms

pytestmark = pytest.mark.slow

#: Small batches and frequent versions, so 5,000 tracks see several.
CLUSTERING = {"cluster_warmup": 300, "cluster_batch": 200, "cluster_publish_seconds": 0.5}


def published(settings) -> list[ClusterModel]:
    """Every version on the models topic, in publishing order."""
    codec = codec_for("ClusterModel")
    name = topics.internal(settings.app_id, topics.CLUSTER_MODELS)
    messages = asyncio.run(consume_all(settings, name))
    return [ClusterModel.from_record(codec.decode(m.value)) for m in messages]


def assert_labelled_by_their_version(records: list[dict], models: list[ClusterModel]) -> int:
    """Each record's cluster is its features' nearest centroid under the version it
    names (None only before the first version or without features); returns how many
    records carry a cluster."""
    by_version = {m.version: m for m in models}
    labelled = 0
    for record in records:
        if record["model_version"] is None:
            assert record["cluster_id"] is None and record["cluster_distance"] is None
            continue
        x = np.array([[record[f] for f in FEATURES]], dtype=float)
        label, distance = by_version[record["model_version"]].assign(x)
        assert record["cluster_id"] == label[0], record["track_id"]
        assert record["cluster_distance"] == pytest.approx(distance[0]), record["track_id"]
        labelled += 1
    return labelled


def wait_settled(settings, workers: list[WorkerProcess], tracks: int) -> list[ClusterModel]:
    """Until every track is enriched, the newest version has learned every one with
    complete features, each of those is labelled and in its profiles, and every
    worker assigns with the newest version."""
    assert wait_for(lambda: len(enriched_by_key(settings)) == tracks, 180)
    learnable = sum(
        all(v[-1][f] is not None for f in FEATURES) for v in enriched_by_key(settings).values()
    )

    def settled() -> list[ClusterModel] | None:
        models = published(settings)
        if not models or models[-1].rows_seen < learnable:
            return None
        if any(
            v[-1]["model_version"] is None and all(v[-1][f] is not None for f in FEATURES)
            for v in enriched_by_key(settings).values()
        ):
            return None  # not all labelled yet
        stats = [w.get("/pipeline/stats") for w in workers]
        if max(st["events"].get("profiled_tracks", 0) for st in stats) < learnable:
            return None  # the newest version's profiles do not cover every track yet
        seen = {(st["cluster_model"] or {}).get("version") for st in stats}
        return models if seen == {models[-1].version} else None

    models = wait_for(settled, 120)  # versions follow the last tracks to reach the trainer
    assert models, "the model did not learn or profile every track, or the workers disagree"
    return models


def test_two_workers_label_with_the_same_versions(fresh_settings, generated_halves, tmp_path):
    settings = fresh_settings.model_copy(update={"partitions": 4, **CLUSTERING})
    with (
        WorkerProcess(settings, tmp_path, "a") as a,
        WorkerProcess(settings, tmp_path, "b") as b,
    ):
        assert wait_for(lambda: split(a, b), 60)
        produce_both_forms(settings, generated_halves)
        models = wait_settled(settings, [a, b], GENERATED_TRACKS)
        stats = [w.get("/pipeline/stats") for w in (a, b)]

    assert [m.version for m in models] == list(range(1, len(models) + 1))
    by_track = enriched_by_key(settings)
    records = [v for versions in by_track.values() for v in versions]
    assert_labelled_by_their_version(records, models)
    # every track with all features is labelled, and emitted once (those that came
    # before the first model waited for it)
    last = [v[-1] for v in by_track.values() if all(v[-1][f] is not None for f in FEATURES)]
    assert last and all(r["model_version"] is not None for r in last)
    assert all(len(versions) == 1 for versions in by_track.values())
    # both workers emitted, and both hold the same newest model
    assert all(s["topics"][topics.TRACKS.name]["records_in"] > 0 for s in stats)
    assert stats[0]["cluster_model"] == stats[1]["cluster_model"]
    # each version's profile: k clusters whose sizes cover what the trainer had learned
    profiles = [
        r
        for m in asyncio.run(consume_all(settings, topics.CLUSTERS.name))
        for r in [codec_for(topics.CLUSTERS.record).decode(m.value)]
    ]
    last = [p for p in profiles if p["model_version"] == models[-1].version]
    assert sorted(p["cluster_id"] for p in last) == list(range(models[-1].k))
    assert sum(p["size"] for p in last) >= GENERATED_TRACKS * 0.9


def test_a_killed_trainer_resumes_from_the_last_published_version(
    fresh_settings, generated_halves, tmp_path
):
    settings = fresh_settings.model_copy(update=CLUSTERING)
    more = tmp_path / "more"
    generate(more, 2000, seed=11, anomalies=0)

    produce_both_forms(settings, generated_halves)
    first = WorkerProcess(settings, tmp_path, "first").start()
    assert wait_for(lambda: len(published(settings)) >= 2, 120)
    first.stop(signal.SIGKILL)
    before = published(settings)

    with WorkerProcess(settings, tmp_path, "second") as second:
        asyncio.run(produce(settings, str(more)))
        # its book rebuilt from the index: the newest profiles cover the first worker's
        # tracks too (wait_settled waits for that)
        models = wait_settled(settings, [second], GENERATED_TRACKS + 2000)

    versions = [m.version for m in models]
    assert versions == list(range(1, len(models) + 1)), "a version restarted or repeated"
    resumed = models[len(before)]
    assert resumed.version == before[-1].version + 1
    # it continued, it did not start over (a version may follow new tracks alone)
    assert resumed.rows_seen >= before[-1].rows_seen
    assert models[-1].rows_seen > before[-1].rows_seen
    records = [v for versions in enriched_by_key(settings).values() for v in versions]
    assert assert_labelled_by_their_version(records, models) > 0


def test_a_catalog_smaller_than_the_warm_up_gets_a_model(fresh_settings, tmp_path):
    """300 tracks, warm-up 1,000: once the features stream is quiet the trainer starts
    from what it has; every track is emitted once, labelled, and has five similar
    tracks; the newest version's profiles cover them all."""
    settings = fresh_settings.model_copy(update={"cluster_publish_seconds": 1})
    assert settings.cluster_warmup == 1000
    small = tmp_path / "small"
    generate(small, 300, seed=13, anomalies=0)
    asyncio.run(produce(settings, str(small)))
    with WorkerProcess(settings, tmp_path) as worker:
        models = wait_settled(settings, [worker], 300)
        track_id = sorted(enriched_by_key(settings))[0]

        def similar() -> dict | None:
            status, body = worker.get_status(f"/tracks/{track_id}/similar?n=5")
            return body if status == 200 else None

        answer = wait_for(similar, 30)

        def profiled() -> list[dict] | None:
            profiles = [
                codec_for(topics.CLUSTERS.record).decode(m.value)
                for m in asyncio.run(consume_all(settings, topics.CLUSTERS.name))
            ]
            newest = max(p["model_version"] for p in profiles)
            last = [p for p in profiles if p["model_version"] == newest]
            return last if sum(p["size"] for p in last) == 300 else None

        newest = wait_for(profiled, 30)
        models = published(settings)

    # the first version from the 300 rows; a later one only for its profiles
    assert models[0].version == 1 and models[0].rows_seen == 300
    assert all(np.array_equal(m.centroids, models[0].centroids) for m in models)
    by_track = enriched_by_key(settings)
    assert all(len(versions) == 1 for versions in by_track.values())
    assert assert_labelled_by_their_version([v[0] for v in by_track.values()], models) == 300
    assert answer, "no similar tracks"
    similar_ids = [t["track_id"] for t in answer["similar"]]
    assert len(similar_ids) == 5 and track_id not in similar_ids
    assert newest, "the newest version's profiles do not cover the 300 tracks"
