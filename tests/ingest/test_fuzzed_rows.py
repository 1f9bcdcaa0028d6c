"""Generated CSV rows through the reader and the cleaning rules: no exception escapes,
every record out encodes with its schema, and every row read is produced or rejected."""

from __future__ import annotations

import csv
import functools
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotify_stream import topics
from spotify_stream.ingest.catalog import CatalogReader
from spotify_stream.ingest.generator import generate
from spotify_stream.ingest.sources import ENTITY_FILES, KAGGLE_COLUMNS, SourceFile
from spotify_stream.models import codec_for

#: Cells a CSV can hold that break naive parsing: numbers past Avro's int and long,
#: list literals nested deeper than Python's parser goes, NULs, quotes, long fields.
HOSTILE = st.sampled_from(
    [
        "9223372036854775808",
        "-9223372036854775809",
        "9223372036854775807",
        "2147483648",
        "2147483647",
        "1e30",
        "1e400",
        "nan",
        "-0.0",
        "12.0",
        "9" * 5000,
        "[" * 50_000 + "]" * 50_000,
        "['a'," * 20_000,
        "[['pop'], 'rock', \"it's\"]",
        "['unterminated",
        "\x00",
        "a\x00b",
        '"',
        "'",
        '""quoted""',
        "x" * 100_000,
        "2024-02-30",
        "0999-01-01",
        "true",
        "",
        " ",
    ]
)
CELL = st.one_of(HOSTILE, st.text(max_size=30), st.integers().map(str), st.floats().map(str))


@functools.cache
def valid_rows() -> dict[str, list[dict[str, str]]]:
    """A small generated catalog, every row valid: the rows mutations start from."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), 20, seed=5, anomalies=0.0)
        rows = {}
        for name in ENTITY_FILES:
            with open(Path(tmp) / name, newline="", encoding="utf-8-sig") as stream:
                rows[name] = list(csv.DictReader(stream))
        return rows


@st.composite
def files(draw) -> dict[str, list[dict[str, str]]]:
    """The generated catalog with a few cells of each file replaced by hostile ones."""
    out = {}
    for name, rows in valid_rows().items():
        rows = [dict(r) for r in rows]
        for _ in range(draw(st.integers(1, 6))):
            row = draw(st.sampled_from(rows))
            row[draw(st.sampled_from(KAGGLE_COLUMNS[name]))] = draw(CELL)
        out[name] = rows
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files())
def test_no_row_breaks_the_reader_and_every_record_encodes(files):
    with tempfile.TemporaryDirectory() as tmp:
        sources = {}
        for name, rows in files.items():
            path = Path(tmp) / name
            with open(path, "w", newline="", encoding="utf-8", errors="surrogatepass") as out:
                writer = csv.DictWriter(out, KAGGLE_COLUMNS[name])
                writer.writeheader()
                writer.writerows(rows)
            sources[name] = SourceFile(name, path, 1_700_000_000_000, path.stat().st_size)
        reader = CatalogReader(sources, max_field_chars=200_000, max_raw_bytes=4096)
        for topic, key, record in reader.records():
            assert key
            codec_for(topic.record).encode(record)  # raises if a value breaks the schema
            if topic != topics.DEADLETTER:
                assert record[topic.key] == key
        for name, stats in reader.stats.items():
            assert stats.error is None
            assert stats.read == len(files[name])
            assert stats.read == stats.produced + sum(stats.rejected.values())
