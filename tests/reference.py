"""Independent references computed from the generated CSV files with DuckDB alone."""

from __future__ import annotations

from pathlib import Path

import duckdb

from spotify_stream import topics
from spotify_stream.agents.enrichment import (
    ALBUM_FIELDS,
    ARTIST_FIELDS,
    FEATURE_FIELDS,
    TRACK_FIELDS,
    missing_parts,
)
from spotify_stream.agents.pipeline import Record
from spotify_stream.ingest.generator import ANOMALY_MANIFEST
from spotify_stream.ingest.sources import ALBUMS_FILE, ARTISTS_FILE, FEATURES_FILE, TRACKS_FILE


def reference_queries(data: Path) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    """A DuckDB connection over the CSV files and, per entity topic, the query of what it must hold.

    Rows the generator listed as anomalies are left out; albums come from the first
    remaining row of each album_id; tracks join the tracks file with the albums file.
    """
    con = duckdb.connect()
    con.execute("SET threads = 1")  # keep file order for row numbers
    for table, file in (
        ("artists", ARTISTS_FILE),
        ("albums", ALBUMS_FILE),
        ("tracks", TRACKS_FILE),
        ("features", FEATURES_FILE),
    ):
        con.execute(f"""
            CREATE TABLE {table}_all AS
            SELECT row_number() OVER () AS row_no, *
            FROM read_csv('{data / file}', all_varchar = true, header = true)""")
        con.execute(f"""
            CREATE TABLE {table} AS SELECT * FROM {table}_all
            WHERE row_no NOT IN (SELECT CAST("row" AS BIGINT) FROM read_csv('{data / ANOMALY_MANIFEST}',
                                 all_varchar = true) WHERE file = '{file}')""")
    nonempty = "list_filter([{}], lambda x: x IS NOT NULL AND trim(x) <> '')"
    queries = {
        topics.ARTISTS.name: f"""
            SELECT id AS artist_id, name, CAST(artist_popularity AS INT) AS popularity,
                   CAST(CAST(followers AS DOUBLE) AS BIGINT) AS followers,
                   {nonempty.format(", ".join(f"genre_{i}" for i in range(7)))} AS genres
            FROM artists""",
        topics.ALBUMS.name: """
            SELECT album_id, album_name AS name, album_type,
                   CASE length(release_date) WHEN 4 THEN make_date(CAST(release_date AS INT), 1, 1)
                        WHEN 7 THEN CAST(release_date || '-01' AS DATE)
                        ELSE CAST(substr(release_date, 1, 10) AS DATE) END AS release_date,
                   CASE length(release_date) WHEN 4 THEN 'year' WHEN 7 THEN 'month' ELSE 'day' END
                       AS release_date_precision,
                   label, CAST(album_popularity AS INT) AS popularity,
                   CAST(total_tracks AS INT) AS total_tracks, artist_id
            FROM (SELECT *, row_number() OVER (PARTITION BY album_id ORDER BY row_no) AS nth FROM albums)
            WHERE nth = 1""",
        topics.TRACKS.name: f"""
            SELECT coalesce(t.id, a.track_id) AS track_id, a.track_name AS name, a.album_id,
                   CAST(a.track_number AS INT) AS track_number,
                   CAST(a.duration_ms AS BIGINT) AS duration_ms, a.artist_id,
                   coalesce({nonempty.format(", ".join(f"a.artist_{i}" for i in range(12)))}, [])
                       AS artist_names,
                   CAST(t.track_popularity AS INT) AS popularity, t.explicit = 'True' AS explicit
            FROM tracks t FULL OUTER JOIN albums a ON a.track_id = t.id""",
        topics.AUDIO_FEATURES.name: """
            SELECT id AS track_id,
                   CAST(danceability AS DOUBLE) AS danceability, CAST(energy AS DOUBLE) AS energy,
                   CAST(key AS INT) AS key, CAST(loudness AS DOUBLE) AS loudness,
                   CAST(mode AS INT) AS mode, CAST(speechiness AS DOUBLE) AS speechiness,
                   CAST(acousticness AS DOUBLE) AS acousticness,
                   CAST(instrumentalness AS DOUBLE) AS instrumentalness,
                   CAST(liveness AS DOUBLE) AS liveness, CAST(valence AS DOUBLE) AS valence,
                   CAST(tempo AS DOUBLE) AS tempo, CAST(duration_ms AS BIGINT) AS duration_ms,
                   CAST(time_signature AS INT) AS time_signature
            FROM features""",
    }
    return con, queries


def reference(data: Path) -> dict[str, dict[str, dict]]:
    """What each entity topic must hold, by key, computed from the CSV files with DuckDB alone."""
    con, queries = reference_queries(data)
    expected = {}
    for topic, sql in queries.items():
        cursor = con.execute(sql)
        columns = [c[0] for c in cursor.description]
        key = columns[0]
        expected[topic] = {
            row[0]: dict(zip(columns, row, strict=True)) for row in cursor.fetchall()
        }
        assert all(k is not None for k in expected[topic]), key
    return expected


def reference_enriched(data: Path) -> dict[str, dict]:
    """Every enriched track, by track_id: the entity references joined in SQL.

    A track misses a part when it references it (album_id / artist_id set; features
    always) and the reference holds no such row; ``complete`` is then false.
    """
    con, queries = reference_queries(data)
    cursor = con.execute(f"""
        WITH t AS ({queries[topics.TRACKS.name]}),
             al AS ({queries[topics.ALBUMS.name]}),
             ar AS ({queries[topics.ARTISTS.name]}),
             f AS ({queries[topics.AUDIO_FEATURES.name]})
        SELECT t.*,
               al.name AS album_name, al.album_type, al.release_date, al.release_date_precision,
               al.label, al.popularity AS album_popularity, al.total_tracks AS album_total_tracks,
               ar.name AS artist_name, ar.popularity AS artist_popularity,
               ar.followers AS artist_followers, coalesce(ar.genres, []) AS genres,
               f.danceability, f.energy, f.key, f.loudness, f.mode, f.speechiness, f.acousticness,
               f.instrumentalness, f.liveness, f.valence, f.tempo, f.time_signature,
               list_filter([
                   CASE WHEN t.album_id IS NOT NULL AND al.album_id IS NULL THEN 'album' END,
                   CASE WHEN t.artist_id IS NOT NULL AND ar.artist_id IS NULL THEN 'artist' END,
                   CASE WHEN f.track_id IS NULL THEN 'features' END], lambda x: x IS NOT NULL)
                   AS missing
        FROM t LEFT JOIN al USING (album_id) LEFT JOIN ar ON ar.artist_id = t.artist_id
               LEFT JOIN f ON f.track_id = t.track_id""")
    columns = [c[0] for c in cursor.description]
    rows = {}
    for row in cursor.fetchall():
        record = dict(zip(columns, row, strict=True))
        record["complete"] = not record["missing"]
        rows[record["track_id"]] = record
    return rows


def enriched_record(
    track: Record, album: Record | None, artist: Record | None, features: Record | None
) -> Record:
    """The EnrichedTrack of a track and whatever dimensions are known, field by field
    (the worker assembles it from encoded parts)."""
    record = {name: track.get(name) for name in TRACK_FIELDS}
    for out, src in ALBUM_FIELDS.items():
        record[out] = album.get(src) if album else None
    for out, src in ARTIST_FIELDS.items():
        record[out] = artist.get(src) if artist else None
    record["genres"] = record["genres"] or []
    for name in FEATURE_FIELDS:
        record[name] = features.get(name) if features else None
    record["features_updated_at"] = features["updated_at"] if features else None
    record["missing"] = missing_parts(track, album, artist, features)
    record["complete"] = not record["missing"]
    record["cluster_id"] = record["model_version"] = record["cluster_distance"] = None
    return record
