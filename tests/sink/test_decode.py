"""The block decoder gives exactly what fastavro gives, record by record."""

import datetime as dt
import io
import random
from typing import Any

import fastavro
import pytest

from spotify_stream.models import SCHEMAS, codec_for
from spotify_stream.models.codec import register_writer_schema
from spotify_stream.models.wire import MAGIC
from spotify_stream.sink.decode import decode
from spotify_stream.sink.parquet import schema_of, to_table

SINK_RECORDS = ["Artist", "Album", "EnrichedTrack", "Play", "Popularity"]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def random_value(rng: random.Random, avro_type: Any) -> Any:
    """A random value of ``avro_type`` as fastavro takes it (nulls, empty lists, unicode)."""
    if isinstance(avro_type, list):
        if "null" in avro_type and rng.random() < 0.3:
            return None
        return random_value(rng, next(t for t in avro_type if t != "null"))
    if isinstance(avro_type, dict):
        logical, kind = avro_type.get("logicalType"), avro_type["type"]
        if logical == "timestamp-millis":
            return EPOCH + dt.timedelta(milliseconds=rng.randrange(-(10**12), 4 * 10**12))
        if logical == "date":
            return dt.date(1900, 1, 1) + dt.timedelta(days=rng.randrange(60_000))
        if kind == "enum":
            return rng.choice(avro_type["symbols"])
        if kind == "array":
            return [random_value(rng, avro_type["items"]) for _ in range(rng.randrange(4))]
        if kind == "record":
            return {f["name"]: random_value(rng, f["type"]) for f in avro_type["fields"]}
        return random_value(rng, kind)
    return {
        "string": lambda: "".join(rng.choice("abcé🎵 ") for _ in range(rng.randrange(12))),
        "int": lambda: rng.randrange(-(2**31), 2**31),
        "long": lambda: rng.randrange(-(2**63), 2**63),
        "double": lambda: rng.uniform(-1e6, 1e6),
        "float": lambda: float(rng.randrange(-1000, 1000)) / 4,
        "boolean": lambda: rng.random() < 0.5,
    }[avro_type]()


def encoded(record: str, n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [codec_for(record).encode(random_value(rng, SCHEMAS[record])) for _ in range(n)]


def reference(items: list[bytes], record: str) -> list[dict]:
    table, rejected = to_table([codec_for(record).decode(i) for i in items], schema_of(record))
    assert rejected == []
    return table.to_pylist()


@pytest.mark.parametrize("record", SINK_RECORDS)
def test_the_block_decoder_agrees_with_fastavro(record):
    items = encoded(record, 400)
    decoded = decode(items, record)
    assert decoded.failed == decoded.undecodable == [] and decoded.rows == list(range(400))
    assert decoded.table.schema == schema_of(record)
    assert decoded.table.to_pylist() == reference(items, record)


def test_a_body_with_bytes_left_over_is_named_and_the_rest_kept():
    items = encoded("Play", 50)
    items[20] += b"\x02\x04"  # a second, shorter record glued on
    decoded = decode(items, "Play")
    assert decoded.failed == []
    assert [index for index, _ in decoded.undecodable] == [20]
    assert "bytes after the record" in decoded.undecodable[0][1]
    good = items[:20] + items[21:]
    assert decoded.rows == [i for i in range(50) if i != 20]
    assert decoded.table.to_pylist() == reference(good, "Play")


def test_the_last_body_with_bytes_left_over_is_caught_too():
    items = encoded("Artist", 10)
    items[-1] += b"\x00"
    decoded = decode(items, "Artist")
    assert [index for index, _ in decoded.undecodable] == [9]
    assert decoded.table.num_rows == 9


def test_records_of_an_older_writer_schema_are_resolved_into_the_current_one():
    current = SCHEMAS["Artist"]
    older = fastavro.parse_schema(
        {
            "type": "record",
            "name": "spotify_stream.Artist",
            "fields": [f for f in current["fields"] if f["name"] != "genres"],
        }
    )
    fingerprint = register_writer_schema(older)
    rng = random.Random(5)
    old = []
    for _ in range(3):
        record = random_value(rng, older)
        body = io_bytes(older, record)
        old.append(MAGIC + fingerprint + body)
    items = encoded("Artist", 5) + old
    decoded = decode(items, "Artist")
    assert decoded.failed == [] and sorted(decoded.rows) == list(range(8))
    rows = dict(zip(decoded.rows, decoded.table.to_pylist(), strict=True))
    assert [rows[i] for i in range(5)] == reference(items[:5], "Artist")
    assert all(rows[i]["genres"] == [] for i in range(5, 8))  # the field's default


def io_bytes(schema: dict, record: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    return out.getvalue()
