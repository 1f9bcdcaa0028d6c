"""Each named query on the DuckDB engine over a large local lake, next to a plain scan.

The lake is written straight from numpy in the sink's layout and Parquet
schemas (the pipeline would take long to make one this size): ``--tracks``
enriched tracks (200 per artist, 10 per album, genres from a pool of 300),
their albums and artists, ``--plays`` plays over 30 days (popularity-weighted
tracks, 100,000 users), hourly popularity windows of the 1,000 most played
artists, and one cluster model's profiles. Files follow the sink's sizes:
one object per dataset, Kafka partition (8) and hour.

Each query runs ``--repeat`` times, twice: on the lake as the sink wrote it,
then after ``etl compact`` of every day and ``etl aggregate`` of every day but
the last (the state a daily Glue schedule keeps: today is computed from the
raw plays). The table shows the medians and the ratio to the baseline,
``SELECT count(*), sum(ms_played) FROM plays`` (a full scan of the largest
dataset), measured in the same run and state.

    python -m bench query [--tracks 1000000] [--plays 5000000] [--repeat 5] [--lake DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spotify_stream.ml.clustering import FEATURES
from spotify_stream.settings import Settings
from spotify_stream.sink.datasets import DATASETS
from spotify_stream.sink.objects import CURATED, ObjectName
from spotify_stream.sink.parquet import schema_of
from spotify_stream.sink.storage import FileStorage
from spotify_stream.warehouse.compaction import compact_day
from spotify_stream.warehouse.etl import aggregate_day
from spotify_stream.warehouse.query import named, named_queries, run_duckdb

PARTITIONS = 8
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
BASELINE = "SELECT count(*) AS plays, sum(ms_played) AS ms FROM plays"


def ids(prefix: str, n: int) -> pa.Array:
    return pa.array([f"{prefix}{i:08d}" for i in range(n)])


def write(root: Path, dataset: str, table: pa.Table, times: np.ndarray) -> int:
    """``table`` in the lake layout: one object per Kafka partition and hour."""
    record = next(d.topic.record for d in DATASETS if d.name == dataset)
    table = table.select(schema_of(record).names).cast(schema_of(record))
    hours = times // 3_600_000
    partition = np.arange(len(table)) % PARTITIONS
    files = 0
    for hour in np.unique(hours):
        for p in range(PARTITIONS):
            rows = np.flatnonzero((hours == hour) & (partition == p))
            if not len(rows):
                continue
            when = dt.datetime.fromtimestamp(int(hour) * 3600, dt.UTC)
            key = ObjectName(dataset, p, int(rows[0]), int(rows[-1]), when).key
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.take(rows), path, compression="zstd")
            files += 1
    return files


def build(root: Path, tracks: int, plays: int) -> dict[str, int]:
    rng = np.random.default_rng(1)
    artists, albums = max(1, tracks // 200), max(1, tracks // 10)
    genres = np.array([f"genre {i}" for i in range(300)])
    t0 = int(START.timestamp() * 1000)
    artist_genres = [
        list(rng.choice(genres, size=rng.integers(1, 4), replace=False)) for _ in range(artists)
    ]
    artist_of_album = rng.integers(0, artists, albums)
    album_of_track = np.arange(tracks) % albums
    artist_of_track = artist_of_album[album_of_track]
    release = (np.datetime64("2015-01-01") + rng.integers(0, 4000, albums)).astype("datetime64[D]")
    popularity = np.clip(rng.normal(45, 20, tracks), 0, 100).astype("int32")
    catalog_ms = np.full(tracks, t0 - 86_400_000)
    features = {f: rng.random(tracks) for f in FEATURES}
    enriched = pa.table(
        {
            "track_id": ids("t", tracks),
            "name": pa.array([f"song {i % 5000}" for i in range(tracks)]),
            "album_id": pa.array([f"al{a:08d}" for a in album_of_track]),
            "track_number": (np.arange(tracks) // albums + 1).astype("int32"),
            "duration_ms": rng.integers(90_000, 400_000, tracks),
            "artist_id": pa.array([f"ar{a:08d}" for a in artist_of_track]),
            "artist_names": pa.array([[f"artist {a}"] for a in artist_of_track]),
            "popularity": popularity,
            "explicit": rng.random(tracks) < 0.1,
            "updated_at": pa.array(catalog_ms).cast(pa.timestamp("ms", tz="UTC")),
            "album_name": pa.array([f"album {a}" for a in album_of_track]),
            "album_type": pa.array(["album"] * tracks),
            "release_date": pa.array(release[album_of_track]),
            "release_date_precision": pa.array(["day"] * tracks),
            "label": pa.array(["label"] * tracks),
            "album_popularity": popularity,
            "album_total_tracks": np.full(tracks, 10, dtype="int32"),
            "album_updated_at": pa.array(catalog_ms).cast(pa.timestamp("ms", tz="UTC")),
            "artist_name": pa.array([f"artist {a}" for a in artist_of_track]),
            "artist_popularity": popularity,
            "artist_followers": rng.integers(0, 1_000_000, tracks),
            "genres": pa.array([artist_genres[a] for a in artist_of_track]),
            "artist_updated_at": pa.array(catalog_ms).cast(pa.timestamp("ms", tz="UTC")),
            **features,
            "key": rng.integers(0, 12, tracks).astype("int32"),
            "mode": rng.integers(0, 2, tracks).astype("int32"),
            "time_signature": np.full(tracks, 4, dtype="int32"),
            "features_updated_at": pa.array(catalog_ms).cast(pa.timestamp("ms", tz="UTC")),
            "complete": np.ones(tracks, dtype=bool),
            "missing": pa.array([[]] * tracks, pa.list_(pa.string())),
            "cluster_id": rng.integers(0, 8, tracks).astype("int32"),
            "model_version": np.full(tracks, 1),
            "cluster_distance": rng.random(tracks),
        }
    )
    weights = np.exp(popularity / 15.0)
    played = rng.choice(tracks, size=plays, p=weights / weights.sum())
    played_ms = t0 + np.sort(rng.integers(0, 30 * 86_400_000, plays))
    play_table = pa.table(
        {
            "user_id": pa.array([f"user-{u:06d}" for u in rng.integers(0, 100_000, plays)]),
            "track_id": pa.array([f"t{t:08d}" for t in played]),
            "played_at": pa.array(played_ms).cast(pa.timestamp("ms", tz="UTC")),
            "ms_played": rng.integers(1_000, 300_000, plays),
            "skipped": rng.random(plays) < 0.2,
            "session_id": pa.array(["s"] * plays),
        }
    )
    album_table = pa.table(
        {
            "album_id": ids("al", albums),
            "name": pa.array([f"album {a}" for a in range(albums)]),
            "album_type": pa.array(["album"] * albums),
            "release_date": pa.array(release),
            "release_date_precision": pa.array(["day"] * albums),
            "label": pa.array(["label"] * albums),
            "popularity": rng.integers(0, 101, albums).astype("int32"),
            "total_tracks": np.full(albums, 10, dtype="int32"),
            "artist_id": pa.array([f"ar{a:08d}" for a in artist_of_album]),
            "updated_at": pa.array(np.full(albums, t0 - 86_400_000)).cast(
                pa.timestamp("ms", tz="UTC")
            ),
        }
    )
    artist_table = pa.table(
        {
            "artist_id": ids("ar", artists),
            "name": pa.array([f"artist {a}" for a in range(artists)]),
            "popularity": rng.integers(0, 101, artists).astype("int32"),
            "followers": rng.integers(0, 1_000_000, artists),
            "genres": pa.array(artist_genres),
            "updated_at": pa.array(np.full(artists, t0 - 86_400_000)).cast(
                pa.timestamp("ms", tz="UTC")
            ),
        }
    )
    # hourly windows of the most played artists, from the plays themselves
    top = np.argsort(-np.bincount(artist_of_track[played], minlength=artists))[:1000]
    hour = (played_ms - t0) // 3_600_000
    rows = []
    for a in top:
        counts = np.bincount(hour[artist_of_track[played] == a], minlength=30 * 24)
        for h in np.flatnonzero(counts):
            start = t0 + int(h) * 3_600_000
            rows.append((f"ar{a:08d}", start, int(counts[h])))
    windows = pa.table(
        {
            "entity_type": pa.array(["artist"] * len(rows)),
            "entity_id": pa.array([r[0] for r in rows]),
            "window": pa.array(["1h"] * len(rows)),
            "window_start": pa.array([r[1] for r in rows]).cast(pa.timestamp("ms", tz="UTC")),
            "window_end": pa.array([r[1] + 3_600_000 for r in rows]).cast(
                pa.timestamp("ms", tz="UTC")
            ),
            "plays": pa.array([r[2] for r in rows]),
            "unique_listeners": pa.array([r[2] for r in rows]),
            "skip_rate": pa.array([0.2] * len(rows)),
            "mean_popularity": pa.array([50.0] * len(rows)),
        }
    )
    profiles = pa.table(
        {
            "model_version": np.ones(8, dtype="int64"),
            "cluster_id": np.arange(8, dtype="int32"),
            "k": np.full(8, 8, dtype="int32"),
            "published_at": pa.array(np.full(8, t0)).cast(pa.timestamp("ms", tz="UTC")),
            "size": np.full(8, tracks // 8),
            **{f: rng.random(8) for f in FEATURES},
            "top_genres": pa.array([list(genres[:5])] * 8),
            "top_track_ids": pa.array([["t00000001"]] * 8),
            "top_track_names": pa.array([["song 1"]] * 8),
        }
    )
    return {
        "tracks_enriched": write(root, "tracks_enriched", enriched, catalog_ms),
        "albums": write(root, "albums", album_table, np.full(albums, t0 - 86_400_000)),
        "artists": write(root, "artists", artist_table, np.full(artists, t0 - 86_400_000)),
        "plays": write(root, "plays", play_table, played_ms),
        "popularity": write(
            root, "popularity", windows, windows["window_start"].cast(pa.int64()).to_numpy()
        ),
        "clusters": write(root, "clusters", profiles, np.full(8, t0)),
    }


def timed(settings: Settings, sql: str) -> float:
    started = time.perf_counter()
    run_duckdb(settings, sql)
    return time.perf_counter() - started


def medians(settings: Settings, statements: dict[str, str], repeat: int) -> dict[str, float]:
    result = {}
    for name, sql in statements.items():
        timed(settings, sql)  # warm the file cache
        result[name] = statistics.median(timed(settings, sql) for _ in range(repeat))
    return result


def etl(settings: Settings, root: Path) -> tuple[float, float]:
    """Every day compacted, every day's marts but the last built (today, in production):
    the median seconds of a day's compaction and aggregation."""
    storage = FileStorage(root)
    days = sorted(
        dt.date.fromisoformat(p.name.removeprefix("dt=")) for p in (root / CURATED).glob("*/dt=*")
    )
    days = sorted(set(days))
    compact, aggregate = [], []
    for day in days:
        started = time.perf_counter()
        asyncio.run(compact_day(settings, storage, day))
        compact.append(time.perf_counter() - started)
    for day in days[:-1]:
        started = time.perf_counter()
        asyncio.run(aggregate_day(settings, storage, day))
        aggregate.append(time.perf_counter() - started)
    return statistics.median(compact), statistics.median(aggregate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--plays", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--lake", type=Path, help="keep the lake in this directory (it is compacted in place)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.lake or Path(tmp)
        if (root / CURATED).exists():
            raise SystemExit(f"{root} already holds a lake: give an empty or new --lake")
        started = time.perf_counter()
        files = build(root, args.tracks, args.plays)
        print(f"lake written in {time.perf_counter() - started:.0f} s: {files} objects")
        settings = Settings(lake=f"file://{root}", _env_file=None)
        top_artist = run_duckdb(settings, named("most_streamed_artists").bind({"n": "1"}))
        params = {
            "top_albums": {"as_of": "2026-11-24"},
            "artist_popularity_trend": {"artist_id": top_artist["artist_id"][0].as_py()},
        }
        statements = {"baseline: scan of plays": BASELINE} | {
            name: q.bind(params.get(name, {})) for name, q in named_queries().items()
        }
        raw = medians(settings, statements, args.repeat)
        compact_s, aggregate_s = etl(settings, root)
        files_after = sum(1 for _ in (root / CURATED).glob("*/*/*/*.parquet"))
        done = medians(settings, statements, args.repeat)
    print(
        f"\n{args.tracks:,} enriched tracks, {args.plays:,} plays, DuckDB engine, "
        f"median of {args.repeat}\n"
    )
    print("| query | as the sink wrote it (s) | compacted, marts but today's (s) | / baseline |")
    print("| --- | ---: | ---: | ---: |")
    for name in statements:
        ratio = done[name] / done["baseline: scan of plays"]
        print(f"| {name} | {raw[name]:.3f} | {done[name]:.3f} | {ratio:.1f} |")
    print(
        f"\nfiles: {sum(files.values()):,} before compaction, {files_after:,} after; "
        f"a day's etl compact {compact_s:.2f} s, etl aggregate {aggregate_s:.2f} s (medians)"
    )


if __name__ == "__main__":
    main()
