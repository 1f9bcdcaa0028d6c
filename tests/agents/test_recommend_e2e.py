"""Recommendation endpoints on two workers: answers checked against the enriched topic
and the published model, whichever worker is asked; bad ids and parameters."""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import numpy as np
import pytest

from spotify_stream import topics
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ml.clustering import FEATURES, ClusterModel
from tests.agents.test_clustering_e2e import CLUSTERING, published, wait_settled
from tests.agents.test_enrichment_e2e import enriched_by_key
from tests.agents.test_workers_e2e import split
from tests.conftest import GENERATED_TRACKS, produce_both_forms, send_records

pytestmark = pytest.mark.slow

USERS = [f"user-{i}" for i in range(12)]


def plays_of(tracks: list[str]) -> dict[str, list[dict]]:
    rng = random.Random(7)
    start = dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC)
    plays = {}
    for u, user in enumerate(USERS):
        picks = rng.sample(tracks, 15)
        plays[user] = [
            {
                "user_id": user,
                "track_id": track,
                "played_at": start + dt.timedelta(seconds=u * 100 + i),
                "ms_played": 30_000,
                "skipped": i % 5 == 4,
                "session_id": f"s-{user}",
            }
            for i, track in enumerate(picks)
        ]
    return plays


def vector(record: dict) -> np.ndarray:
    return np.array([record[f] for f in FEATURES], dtype=float)


def test_recommendations_from_any_worker(fresh_settings, generated_halves, tmp_path):
    settings = fresh_settings.model_copy(update={"partitions": 4, **CLUSTERING})
    with (
        WorkerProcess(settings, tmp_path, "a") as a,
        WorkerProcess(settings, tmp_path, "b") as b,
    ):
        assert wait_for(lambda: split(a, b), 60)
        produce_both_forms(settings, generated_halves)
        models = wait_settled(settings, [a, b], GENERATED_TRACKS)
        latest = {k: v[-1] for k, v in enriched_by_key(settings).items()}
        complete = {k: r for k, r in latest.items() if all(r[f] is not None for f in FEATURES)}
        plays = plays_of(sorted(complete))
        asyncio.run(
            send_records(settings, [(topics.PLAYS, p) for ps in plays.values() for p in ps])
        )
        sent = sum(map(len, plays.values()))
        assert wait_for(
            lambda: (
                sum(w.topic_stats(topics.PLAYS.name).get("records_in", 0) for w in (a, b)) >= sent
            ),
            60,
        )

        def model_of(version: int) -> ClusterModel:
            """The version an answer names: the newest, or one published since for
            tracks that reached the trainer after it (same centroids or moved on)."""
            assert version >= models[-1].version
            return {m.version: m for m in published(settings)}[version]

        def duplicate_key(track_id: str) -> tuple:
            r = latest[track_id]
            return (r["name"].casefold(), r["artist_name"].casefold())

        for i, user in enumerate(USERS):
            worker = (a, b)[i % 2]  # half of them asked of the worker without their partition
            status, body = worker.get_status(f"/users/{user}/recommendations?n=10")
            assert status == 200, body
            model = model_of(body["model_version"])
            got = [t["track_id"] for t in body["recommendations"]]
            played = {p["track_id"] for p in plays[user]}
            liked = [p["track_id"] for p in plays[user] if not p["skipped"]]
            assert body["based_on_plays"] == len(liked) == 12
            assert len(got) == 10 and len(set(got)) == 10
            assert not set(got) & played
            assert all(t in complete for t in got)  # real tracks, with features
            keys = [duplicate_key(t) for t in got]
            assert len(set(keys)) == 10 and not set(keys) & {duplicate_key(t) for t in played}
            # distances recomputed from the enriched records and the published model
            taste = model.standardize(np.array([vector(latest[t]) for t in liked])).mean(axis=0)
            for track in body["recommendations"]:
                z = model.standardize(vector(latest[track["track_id"]])[None])[0]
                assert track["distance"] == pytest.approx(np.linalg.norm(z - taste), abs=1e-3)
                assert track["popularity"] == latest[track["track_id"]]["popularity"]

        query = sorted(complete)[0]
        for worker in (a, b):
            status, body = worker.get_status(f"/tracks/{query}/similar?n=10")
            assert status == 200, body
            got = body["similar"]
            model = model_of(body["model_version"])
            assert len(got) == 10 and query not in {t["track_id"] for t in got}
            z0 = model.standardize(vector(latest[query])[None])[0]
            distances = [
                np.linalg.norm(model.standardize(vector(latest[t["track_id"]])[None])[0] - z0)
                for t in got
            ]
            assert [t["distance"] for t in got] == pytest.approx(distances, abs=1e-3)
            assert distances == sorted(distances)
            # the cluster is large: all of it; and no track of that cluster is nearer
            label = model.assign(vector(latest[query])[None])[0][0]
            assert {t["cluster_id"] for t in got} == {label}
            nearer = [
                t
                for t, r in complete.items()
                if t != query
                and t not in {g["track_id"] for g in got}
                and model.assign(vector(r)[None])[0][0] == label
                and np.linalg.norm(model.standardize(vector(r)[None])[0] - z0) < distances[-1]
            ]
            # only duplicates of a returned track (same name and artist) may be nearer
            returned = {duplicate_key(g["track_id"]) for g in got} | {duplicate_key(query)}
            assert all(duplicate_key(t) in returned for t in nearer)

        for path, status in (
            ("/tracks/no-such-track/similar", 404),
            ("/users/no-such-user/recommendations", 404),
            (f"/tracks/{query}/similar?n=0", 400),
            (f"/tracks/{query}/similar?n=abc", 400),
            (f"/users/{USERS[0]}/recommendations?n=101", 400),
            (f"/users/{USERS[1]}/recommendations?n=-3", 400),
        ):
            for worker in (a, b):
                code, body = worker.get_status(path)
                assert code == status, (path, body)
                assert set(body) == {"error"} and body["error"], path
