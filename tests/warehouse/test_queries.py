"""Each named query, run by the DuckDB engine over a lake the pipeline produced from
generated data, against the same answer computed independently: from the CSV files
with DuckDB (tests/reference.py), the scripted plays, and the published model."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import html
import io
import json
import random
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import sqlglot
from aiokafka import TopicPartition
from PIL import Image

from spotify_stream import topics
from spotify_stream.dashboard.charts import CHARTS
from spotify_stream.dashboard.data import jsonable
from spotify_stream.dashboard.report import PNG_SIZE, _draw, font_families
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.errors import UserError
from spotify_stream.ingest.generator import ANOMALY_MANIFEST
from spotify_stream.ingest.producer import produce
from spotify_stream.ml.clustering import FEATURES
from spotify_stream.sink.storage import storage_for
from spotify_stream.warehouse.compaction import compact_day
from spotify_stream.warehouse.marts import marts
from spotify_stream.warehouse.query import named, named_queries, run_duckdb
from spotify_stream.warehouse.tables import hive_type, table_specs
from tests.agents.test_clustering_e2e import published
from tests.conftest import pipeline_settings, plays_drained, send_records
from tests.models.test_codec import SAMPLES
from tests.reference import reference, reference_enriched
from tests.test_cli import run

pytestmark = pytest.mark.slow

AS_OF = "2024-06-30"
ORPHANS = [
    SAMPLES["Track"] | {"track_id": f"orphan-{i}", "album_id": "no-album", "artist_id": "no-artist"}
    for i in range(2)
]


@pytest.fixture(scope="module")
def lake(generated, tmp_path_factory):
    """One pipeline run: the generated catalog and 3,000 scripted plays (and one the next
    morning for each track played), landed in a file
    lake; the worker stopped, so every flush is written. Yields (settings, plays, models)."""
    workdir: Path = tmp_path_factory.mktemp("queries")
    with EmbeddedBroker() as broker:
        settings = pipeline_settings(
            broker,
            workdir,
            cluster_warmup=300,
            join_max_wait=3,  # tracks whose dimensions never come are emitted incomplete
            # plays arrive in one burst, partitions hours apart: a grace that covers it
            window_grace=9 * 3600,
        )
        complete = sorted(t for t, r in reference_enriched(generated).items() if r["complete"])
        rng = random.Random(11)
        start = dt.datetime(2026, 11, 24, 8, tzinfo=dt.UTC)
        plays = [
            {
                "user_id": f"user-{rng.randrange(40)}",
                "track_id": rng.choice(complete[:300]),  # a few tracks, many plays each
                "played_at": start + dt.timedelta(seconds=10 * i),  # 8.3 hours
                "ms_played": 1000,
                "skipped": rng.random() < 0.2,
                "session_id": "s",
            }
            for i in range(3000)
        ]
        # a play of each track the next morning: its time passes every hourly window's
        # end + grace in every partition its entities reach (each keeps its own clock)
        morning = [
            plays[0] | {"track_id": t, "played_at": start + dt.timedelta(hours=18)}
            for t in sorted({p["track_id"] for p in plays})
        ]
        plays += morning
        with WorkerProcess(settings, workdir) as worker:
            asyncio.run(produce(settings, str(generated)))
            # two tracks whose album, artist and features never come: emitted incomplete
            asyncio.run(send_records(settings, [(topics.TRACKS, t) for t in ORPHANS]))
            assert wait_for(
                lambda: (
                    (s := worker.get("/pipeline/stats"))["cluster_model"]
                    and s["cluster_model"]["rows_seen"] >= len(complete)
                    and not s["unlabelled_tracks"]
                    and not s["pending_joins"]
                ),
                180,
            )

            # the next morning's plays last, once the others are through: first, they
            # would move the clocks past them all
            for sent in (len(plays) - len(morning), len(plays)):
                batch = plays[sent - len(morning) : sent] if sent == len(plays) else plays[:sent]
                asyncio.run(send_records(settings, [(topics.PLAYS, p) for p in batch]))
                assert wait_for(lambda n=sent: plays_drained(worker, n), 60)
            # the windows the last play closed: out, landed, and no more coming
            seen: list[int] = []

            def settled() -> bool:
                stats = worker.get("/pipeline/stats")
                out = stats["topics"].get(topics.POPULARITY.name, {}).get("messages_out", 0)
                seen.append(out)
                landed = stats["lake"]["popularity"]["read"] >= out > 0
                return landed and seen[-3:] == [out] * 3

            assert wait_for(settled, 60, interval=0.5)
            assert worker.get("/pipeline/stats")["events"].get("late_contributions", 0) == 0
            assert wait_for(
                lambda: worker.get("/pipeline/stats")["lake"]["plays"]["read"] >= len(plays), 60
            )
            # the newest model's profiles published after every track was learned and
            # reached the trainer's book (tracks held for the first model come after it)
            assert wait_for(lambda: published(settings)[-1].rows_seen >= len(complete), 60)
            assert wait_for(
                lambda: (
                    worker.get("/pipeline/stats")["events"].get("profiled_tracks", 0)
                    >= len(complete)
                ),
                60,
            )
            models = published(settings)
        yield settings, plays, models


def rows(settings, name: str, **params) -> list[dict]:
    return run_duckdb(settings, named(name).bind(params)).to_pylist()


def test_every_named_query_and_mart_parses_as_athena():
    for query in named_queries().values():
        bound = query.bind({k: v or "x" for k, v in query.defaults.items()})
        assert sqlglot.parse_one(bound, read="athena") is not None, query.name
    for mart in marts().values():
        sql = mart.for_days("SELECT '2026-11-24' AS dt")
        assert sqlglot.parse_one(sql, read="athena") is not None, mart.name


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
                "hours_played": round(sum(p["ms_played"] for p in ps) / 3_600_000, 2),
                "skip_rate": round(sum(p["skipped"] for p in ps) / len(ps), 4),
            }
            for artist, ps in by_artist.items()
            if artist is not None
        ),
        key=lambda r: (-r["plays"], r["artist_id"]),
    )[:10]
    got = rows(settings, "most_streamed_artists")
    assert [{**r, "hours_played": float(r["hours_played"])} for r in got] == expected


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


def test_top_genres_over_time(lake, generated):
    settings, plays, _ = lake
    tracks = reference_enriched(generated)
    daily: Counter = Counter()
    for play in plays:
        for genre in tracks[play["track_id"]]["genres"]:
            daily[(play["played_at"].date(), genre)] += 1
    expected = []
    for day in sorted({d for d, _ in daily}):
        ranked = sorted(((-n, g) for (d, g), n in daily.items() if d == day))[:3]
        expected += [
            {"day": day, "rank": r, "genre": g, "plays": -n} for r, (n, g) in enumerate(ranked, 1)
        ]
    assert rows(settings, "top_genres_over_time", n="3") == expected


def test_artist_popularity_trend(lake, generated):
    settings, plays, _ = lake
    tracks = reference_enriched(generated)
    artist = Counter(tracks[p["track_id"]]["artist_id"] for p in plays).most_common(1)[0][0]
    latest = max(p["played_at"] for p in plays)
    hour = dt.timedelta(hours=1)
    windows: dict[dt.datetime, list[dict]] = {}
    for play in plays:
        if tracks[play["track_id"]]["artist_id"] == artist:
            start = play["played_at"].replace(minute=0, second=0, microsecond=0)
            windows.setdefault(start, []).append(play)
    grace = dt.timedelta(hours=9)
    closed = sorted(s for s in windows if s + hour + grace <= latest)
    assert len(closed) >= 5
    got = rows(settings, "artist_popularity_trend", artist_id=artist)
    assert [r["window_start"] for r in got] == closed
    for i, (r, start) in enumerate(zip(got, closed, strict=True)):
        ps = windows[start]
        assert r["window_end"] == start + hour
        assert r["plays"] == len(ps)
        assert r["unique_listeners"] == len({p["user_id"] for p in ps})  # exact below 64
        assert r["skip_rate"] == pytest.approx(sum(p["skipped"] for p in ps) / len(ps))
        recent = [len(windows[s]) for s in closed[max(0, i - 2) : i + 1]]
        assert r["plays_rolling_3"] == pytest.approx(sum(recent) / len(recent))


def test_data_quality(lake, generated):
    settings, _, _ = lake
    missing: Counter = Counter()
    for track in reference_enriched(generated).values():
        for part in track["missing"] or ["none"]:
            missing[part] += 1
    for part in ("album", "artist", "features"):
        missing[part] += len(ORPHANS)
    # the producer dead-letters exactly the generator's anomalies (test_produce_e2e)
    manifest = Counter(
        row["reason"] for row in csv.DictReader((generated / ANOMALY_MANIFEST).open(newline=""))
    )
    assert manifest
    expected = [
        *({"check": "dead letters", "value": r, "count": n} for r, n in sorted(manifest.items())),
        *({"check": "tracks missing", "value": k, "count": n} for k, n in sorted(missing.items())),
    ]
    assert rows(settings, "data_quality") == expected


def test_a_required_parameter_and_an_unknown_one_are_one_line():
    with pytest.raises(UserError, match="needs --param artist_id=VALUE"):
        named("artist_popularity_trend").bind({})
    with pytest.raises(UserError, match="has no parameter nope; it takes n"):
        named("most_streamed_artists").bind({"nope": "1"})


def test_the_static_report(lake, tmp_path):
    """index.html references one PNG per lake chart, each a PNG of the report's size, and
    its tables hold the named queries' numbers."""
    settings, _, _ = lake
    proc = run("report", "--out", "r", cwd=tmp_path, env={"SPOTIFY_STREAM_LAKE": settings.lake})
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "r"
    page = (out / "index.html").read_text()
    lake_charts = [c for c in CHARTS if not c.live]
    referenced = re.findall(r'<img src="([^"]+)"', page)
    assert referenced == [f"{c.id}.png" for c in lake_charts]
    assert sorted(p.name for p in out.glob("*.png")) == sorted(referenced)
    for name in referenced:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size == PNG_SIZE, name
            darkest, lightest = image.convert("L").getextrema()
            assert lightest - darkest > 100, f"{name} is blank"
    for chart_id, label, value in (
        ("top_albums", "name", "popularity"),
        ("most_streamed_artists", "artist_name", "plays"),
    ):
        section = page[page.index(f'<section id="{chart_id}">') :]
        section = section[: section.index("</section>")]
        cells = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td></tr>", section)
        chart = next(c for c in CHARTS if c.id == chart_id)
        expected = rows(settings, chart.query, **chart.params)
        assert cells == [(html.escape(str(r[label])), str(r[value])) for r in expected]


def test_every_named_query_in_every_format(lake, generated, tmp_path):
    """json is one document, jsonl a line per row, csv holds list columns as JSON, and a
    table too wide for the terminal is a block per row; all with the rows run_duckdb gives."""
    settings, plays, _ = lake
    tracks = reference_enriched(generated)
    artist = Counter(tracks[p["track_id"]]["artist_id"] for p in plays).most_common(1)[0][0]
    params = {"artist_popularity_trend": {"artist_id": artist}}
    env = {"SPOTIFY_STREAM_LAKE": settings.lake}
    for name in named_queries():
        given = params.get(name, {})
        expected = jsonable(rows(settings, name, **given))
        assert expected, name
        args = ["query", name, *(f"--param={k}={v}" for k, v in given.items()), "--format"]
        proc = run(*args, "json", cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == expected, name
        proc = run(*args, "jsonl", cwd=tmp_path, env=env)
        assert [json.loads(line) for line in proc.stdout.splitlines()] == expected, name
        proc = run(*args, "csv", cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
        got = list(csv.DictReader(io.StringIO(proc.stdout)))
        assert len(got) == len(expected), name
        for cells, row in zip(got, expected, strict=True):
            assert list(cells) == list(row), name
            for column, value in row.items():
                cell = cells[column]
                if isinstance(value, list):
                    assert json.loads(cell) == value, (name, column)
                elif value is None:
                    assert cell == "", (name, column)
                elif isinstance(value, float):
                    assert float(cell) == pytest.approx(value), (name, column)
                else:
                    assert cell == str(value), (name, column)
    proc = run("query", "cluster_profiles", cwd=tmp_path, env=env)  # 14 columns, lists
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "row 1" in lines[0] and max(len(line) for line in lines) <= 120
    assert (
        "top_genres" in proc.stdout
        and lines[-1] == f"{len(rows(settings, 'cluster_profiles'))} rows"
    )


def test_cjk_names_are_drawn(tmp_path, caplog):
    """A CJK glyph comes from Debian's Noto CJK font (./dev test installs it), with no
    matplotlib warning and no 'drawn as boxes' line."""
    chart = next(c for c in CHARTS if c.id == "most_streamed_artists")
    assert any("CJK" in family for family in font_families()), "install fonts-noto-cjk"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        _draw(chart, [{chart.x: "Jo星 Unbrivi", chart.y: 465}], None, tmp_path / "cjk.png")
    assert "drawn as boxes" not in caplog.text
    with Image.open(tmp_path / "cjk.png") as image:
        assert image.size == PNG_SIZE


def answers(settings) -> dict[str, list[dict]]:
    artist = rows(settings, "most_streamed_artists", n="1")[0]["artist_id"]
    params = {"top_albums": {"as_of": AS_OF}, "artist_popularity_trend": {"artist_id": artist}}
    return {name: rows(settings, name, **params.get(name, {})) for name in named_queries()}


def test_every_named_query_answers_the_same_on_iceberg_tables(lake, tmp_path):
    """`etl to-iceberg` copies the lake into Iceberg tables (the workers stopped): every
    named query answers the same through them, each table holds the rows of its
    dataset's objects, and its snapshot the offsets the sink's group committed."""
    from spotify_stream.kafka import start_offsets
    from spotify_stream.sink.iceberg import catalog_of, offsets_of
    from tests.lake import DATASETS, lake_rows, multiset

    settings, plays, _ = lake
    root = Path(settings.lake.removeprefix("file://"))
    env = {"SPOTIFY_STREAM_LAKE": settings.lake, "SPOTIFY_STREAM_BROKER": settings.broker}
    proc = run("etl", "to-iceberg", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"plays: {len(lake_rows(settings, 'plays')):,} rows" in proc.stdout, proc.stdout
    iceberg = settings.model_copy(update={"lake_format": "iceberg"})
    assert (root / "iceberg" / "catalog.db").is_file()

    hive = answers(settings)
    assert all(hive.values())
    assert answers(iceberg) == hive
    catalog = catalog_of(iceberg)
    for name, topic in DATASETS.items():
        assert multiset(lake_rows(iceberg, name)) == multiset(lake_rows(settings, name)), name
        table = catalog.load_table((settings.glue_database, name))
        committed = asyncio.run(
            start_offsets(
                settings,
                f"{settings.app_id}-lake",
                [TopicPartition(topic.name, p) for p in range(settings.partitions)],
            )
        )
        assert offsets_of(table) == {tp.partition: o for tp, o in committed.items() if o}, name
    # compaction (each table's partition of a day in one snapshot; the copy wrote one
    # file a day, so little to do here: tests/warehouse/test_iceberg_compaction.py)
    settings_env = env | {"SPOTIFY_STREAM_LAKE_FORMAT": "iceberg"}
    for day in sorted({p["played_at"].date() for p in plays}):
        proc = run("etl", "compact", "--date", f"{day}", "--force", cwd=tmp_path, env=settings_env)
        assert proc.returncode == 0, proc.stderr
        assert "plays" in proc.stdout, proc.stdout
    assert answers(iceberg) == hive
    for name in DATASETS:
        assert multiset(lake_rows(iceberg, name)) == multiset(lake_rows(settings, name)), name
    # once is enough: a second copy is refused in one line, the tables unchanged
    again = run("etl", "to-iceberg", cwd=tmp_path, env=env)
    assert again.returncode == 2 and "holds rows already" in again.stderr


def test_marts_and_compaction_change_no_answer(lake):
    """Runs last: it rewrites the lake. Every named query answers the same (the values
    checked above) with marts for one day, for both, and after compaction; the row
    multiset of every hour folder is kept, in fewer files; the marts' files have the
    columns of their Glue tables."""
    settings, plays, _ = lake
    root = Path(settings.lake.removeprefix("file://"))
    env = {"SPOTIFY_STREAM_LAKE": settings.lake}
    days = sorted({p["played_at"].date() for p in plays})
    assert len(days) == 2
    before = answers(settings)
    assert all(before.values())

    for i, day in enumerate(days):
        proc = run("etl", "aggregate", "--date", f"{day}", "--force", cwd=root, env=env)
        assert proc.returncode == 0, proc.stderr
        assert len(list((root / "marts").glob(f"*/dt={day}/part-0.parquet"))) == len(marts())
        assert answers(settings) == before, f"marts of {days[: i + 1]}"

    for spec in table_specs(settings.lake):
        if spec.partition_keys == ("dt",):
            written = pq.read_schema(
                root / "marts" / spec.name / f"dt={days[0]}" / "part-0.parquet"
            )
            assert list(spec.columns) == [(f.name, hive_type(f.type)) for f in written]

    def folders() -> dict[str, tuple[int, Counter]]:
        found = {}
        for path in sorted((root / "curated").glob("*/*/*/*.parquet")):
            table = pq.read_table(path)
            table = table.drop_columns([c for c in ("dt", "hr") if c in table.column_names])
            found.setdefault(str(path.parent), [0, Counter()])
            found[str(path.parent)][0] += 1
            found[str(path.parent)][1].update(
                tuple(sorted((k, repr(v)) for k, v in r.items())) for r in table.to_pylist()
            )
        return found

    layout = folders()
    compacted_days = sorted({Path(f).parent.name.removeprefix("dt=") for f in layout})
    for day in days:  # the command, for the plays' days
        proc = run("etl", "compact", "--date", f"{day}", "--force", cwd=root, env=env)
        assert proc.returncode == 0, proc.stderr
    storage = storage_for(settings)
    for day in compacted_days:  # every other day of the catalog's updates, in process
        asyncio.run(compact_day(settings, storage, dt.date.fromisoformat(day)))
    after = folders()
    assert {f: rows for f, (_, rows) in after.items()} == {f: r for f, (_, r) in layout.items()}
    assert all(after[f][0] == 1 for f in after)  # every folder fits compact_file_rows
    assert sum(n for n, _ in after.values()) < sum(n for n, _ in layout.values())
    assert answers(settings) == before
