"""Each named query, run by the DuckDB engine over a lake the pipeline produced from
generated data, against the same answer computed independently: from the CSV files
with DuckDB (tests/reference.py), the scripted plays, and the published model."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import sqlglot

from spotify_stream import topics
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.ingest.producer import produce
from spotify_stream.ml.clustering import FEATURES
from spotify_stream.settings import Settings
from spotify_stream.warehouse.query import named, named_queries, run_duckdb
from tests.agents.test_clustering_e2e import published
from tests.conftest import send_records
from tests.reference import reference, reference_enriched

pytestmark = pytest.mark.slow

AS_OF = "2024-06-30"


@pytest.fixture(scope="module")
def lake(generated, tmp_path_factory):
    """One pipeline run: the generated catalog and 3,000 scripted plays, landed in a file
    lake; the worker stopped, so every flush is written. Yields (settings, plays)."""
    workdir: Path = tmp_path_factory.mktemp("queries")
    with EmbeddedBroker() as broker:
        settings = Settings(
            broker=f"kafka://{broker.bootstrap}",
            data_dir=workdir / "state",
            producer_idempotence="off",
            partitions=4,
            lake=f"file://{workdir}/lake",
            flush_seconds=1,
            cluster_warmup=300,
            _env_file=None,
        )
        complete = sorted(t for t, r in reference_enriched(generated).items() if r["complete"])
        rng = random.Random(11)
        start = dt.datetime(2026, 11, 24, 8, tzinfo=dt.UTC)
        plays = [
            {
                "user_id": f"user-{rng.randrange(40)}",
                "track_id": rng.choice(complete[:300]),  # a few tracks, many plays each
                "played_at": start + dt.timedelta(seconds=i),
                "ms_played": 1000,
                "skipped": rng.random() < 0.2,
                "session_id": "s",
            }
            for i in range(3000)
        ]
        with WorkerProcess(settings, workdir) as worker:
            asyncio.run(produce(settings, str(generated)))
            assert wait_for(
                lambda: (
                    (s := worker.get("/pipeline/stats"))["cluster_model"]
                    and s["cluster_model"]["rows_seen"] >= len(complete)
                    and not s["unlabelled_tracks"]
                ),
                180,
            )
            asyncio.run(send_records(settings, [(topics.PLAYS, p) for p in plays]))
            assert wait_for(
                lambda: worker.get("/pipeline/stats")["lake"]["plays"]["read"] >= len(plays), 60
            )
            # the newest model's profiles published after every track was learned
            assert wait_for(lambda: published(settings)[-1].rows_seen >= len(complete), 60)
            models = published(settings)
        yield settings, plays, models


def rows(settings, name: str, **params) -> list[dict]:
    return run_duckdb(settings, named(name).bind(params)).to_pylist()


def test_every_named_query_parses_as_athena():
    for query in named_queries().values():
        bound = query.bind({k: v or "x" for k, v in query.defaults.items()})
        assert sqlglot.parse_one(bound, read="athena") is not None, query.name


def test_top_albums(lake, generated):
    settings, _, _ = lake
    albums = reference(generated)[topics.ALBUMS.name].values()
    as_of = dt.date.fromisoformat(AS_OF)
    since = as_of.replace(year=as_of.year - 5)
    expected = sorted(
        (
            a
            for a in albums
            if a["release_date"]
            and since < a["release_date"] <= as_of
            and a["popularity"] is not None
        ),
        key=lambda a: (-a["popularity"], a["name"], a["album_id"]),
    )[:15]
    got = rows(settings, "top_albums", as_of=AS_OF, n="15")
    assert len(got) == 15
    assert got == [
        {
            k: a[k]
            for k in ("album_id", "name", "album_type", "release_date", "popularity", "artist_id")
        }
        for a in expected
    ]


def test_most_streamed_artists(lake, generated):
    settings, plays, _ = lake
    tracks = reference_enriched(generated)
    by_artist: dict[str, list[dict]] = {}
    for play in plays:
        by_artist.setdefault(tracks[play["track_id"]]["artist_id"], []).append(play)
    expected = sorted(
        (
            {
                "artist_id": artist,
                "artist_name": tracks[ps[0]["track_id"]]["artist_name"],
                "plays": len(ps),
                "listeners": len({p["user_id"] for p in ps}),
                "skip_rate": round(sum(p["skipped"] for p in ps) / len(ps), 4),
            }
            for artist, ps in by_artist.items()
            if artist is not None
        ),
        key=lambda r: (-r["plays"], r["artist_id"]),
    )[:10]
    got = rows(settings, "most_streamed_artists")
    assert [{**r, "skip_rate": float(r["skip_rate"])} for r in got] == expected


def test_cluster_profiles(lake, generated):
    settings, _, models = lake
    newest = models[-1]
    tracks = [r for r in reference_enriched(generated).values() if r["complete"]]
    x = np.array([[t[f] for f in FEATURES] for t in tracks], dtype=float)
    labels, _ = newest.assign(x)
    sizes = Counter(labels.tolist())
    got = rows(settings, "cluster_profiles")
    assert [r["cluster_id"] for r in got] == list(range(newest.k))
    assert {r["model_version"] for r in got} == {newest.version}
    assert [r["size"] for r in got] == [sizes.get(c, 0) for c in range(newest.k)]
    for r in got:
        if r["size"]:
            means = x[labels == r["cluster_id"]].mean(axis=0)
            assert [r[f] for f in FEATURES] == pytest.approx(means.tolist(), rel=1e-9)
