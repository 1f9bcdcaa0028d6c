"""Generated data through the real embedded broker, checked against DuckDB on the CSVs."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from spotify_stream import topics
from spotify_stream.ingest.generator import ANOMALY_MANIFEST
from spotify_stream.ingest.producer import produce
from spotify_stream.ingest.sources import ALBUMS_FILE, ARTISTS_FILE, FEATURES_FILE, TRACKS_FILE
from spotify_stream.kafka import partition_for
from spotify_stream.models import codec_for
from tests.conftest import GENERATED_TRACKS, consume_all

pytestmark = pytest.mark.slow


def reference(data: Path) -> dict[str, dict[str, dict]]:
    """What each entity topic must hold, computed from the CSV files with DuckDB alone.

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


def manifest(data: Path) -> Counter:
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT file, CAST(\"row\" AS BIGINT), reason FROM read_csv('{data / ANOMALY_MANIFEST}', all_varchar = true)"
    ).fetchall()
    return Counter(rows)


async def test_generated_catalog_arrives_exactly_once_with_equal_values(fresh_settings, generated):
    # Small batches: every partition gets many, so batch rotation is exercised too.
    fresh_settings = fresh_settings.model_copy(update={"producer_max_batch_bytes": 16_384})
    result = await produce(fresh_settings, str(generated))
    assert not result.file_errors and not result.interrupted

    expected = reference(generated)
    assert len(expected[topics.TRACKS.name]) == GENERATED_TRACKS
    mtimes = {
        f: int((generated / f).stat().st_mtime * 1000)
        for f in (ARTISTS_FILE, ALBUMS_FILE, TRACKS_FILE, FEATURES_FILE)
    }

    for topic in (topics.ARTISTS, topics.ALBUMS, topics.TRACKS, topics.AUDIO_FEATURES):
        messages = await consume_all(fresh_settings, topic.name)
        codec = codec_for(topic.record)
        decoded = {}
        for message in messages:
            record = codec.decode(message.value)
            key = record[topic.key]
            assert message.key == key.encode()
            assert message.partition == partition_for(message.key, fresh_settings.partitions)
            assert key not in decoded, f"{topic.name}: {key} arrived twice"
            updated_at = record.pop("updated_at")
            assert isinstance(updated_at, dt.datetime)
            decoded[key] = record
        assert decoded == expected[topic.name], topic.name
        assert result.messages[topic.name] == len(messages)

    # Source timestamps: each record carries its file's modification time.
    artist = codec_for("Artist").decode(
        (await consume_all(fresh_settings, topics.ARTISTS.name))[0].value
    )
    assert int(artist["updated_at"].timestamp() * 1000) == mtimes[ARTISTS_FILE]

    dead = await consume_all(fresh_settings, topics.DEADLETTER.name)
    letters = [codec_for("DeadLetter").decode(m.value) for m in dead]
    assert Counter((d["source"], d["row"], d["reason"]) for d in letters) == manifest(generated)
    assert all(d["raw"] and d["raw_size"] == len(d["raw"]) and d["line"] >= 2 for d in letters)
    assert result.messages[topics.DEADLETTER.name] == len(letters)

    # The summary agrees with what arrived: read == produced + rejected, per file.
    by_file = Counter()
    for (file, _row, reason), n in manifest(generated).items():
        by_file[(file, reason)] += n
    for name, stats in result.files.items():
        assert stats.read == stats.produced + sum(stats.rejected.values())
        assert dict(stats.rejected) == {r: n for (f, r), n in by_file.items() if f == name}
