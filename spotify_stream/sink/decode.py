"""Encoded records of one dataset to an Arrow table, decoded outside the GIL.

A flush holds messages as they came (single-object Avro). Decoding them one
by one with fastavro (26 us an EnrichedTrack, plus 5 us for
``Table.from_pylist``) would cost more than the enrichment itself, on the
event loop's thread. Instead, the bodies written with the current schema are
laid end to end as one block of an Avro container and decoded by polars'
Avro reader in Rust (1.4 us a record, with the GIL released), then converted
to the dataset's Arrow schema (``models.arrow``).

polars reads the container with a plain copy of the schema: logical types
as their Avro values and enums as their index (the same binary encoding),
turned into timestamps, dates and symbols here, with Arrow. The block ends
with the first body once more; reading it back equal to the first row proves
every body decoded to exactly its own length (a body with bytes left over
would shift everything after it). Anything else (records of an older writer
schema, or a block polars cannot read) takes fastavro, one record at a time,
where a body that does not decode is named and the rest is kept.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import fastavro
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from spotify_stream.models import SCHEMAS, codec_for
from spotify_stream.models.codec import HEADER_SIZE, DecodeError
from spotify_stream.sink.parquet import schema_of, to_table

_SYNC = b"spotify-stream\x00\x00"  # the container's 16-byte sync marker
#: What a block polars cannot read raises (a Rust panic is a BaseException).
_UNREADABLE = (
    pl.exceptions.PolarsError,
    pl.exceptions.PanicException,
    OSError,
    ValueError,
    pa.ArrowException,
)


@dataclass
class Decoded:
    table: pa.Table
    rows: list[int]  # index in the input of each row of ``table``
    failed: list[tuple[int, str]] = field(default_factory=list)  # (index, reason)


def decode(items: Sequence[bytes], record: str) -> Decoded:
    """``items`` (single-object encoded ``record``\\ s) as a table of the dataset's schema."""
    current = codec_for(record).fingerprint
    fast = [i for i, item in enumerate(items) if item[2:HEADER_SIZE] == current]
    decoded = None
    if fast:
        try:
            decoded = Decoded(_read_block([items[i] for i in fast], record), fast)
        except _UNREADABLE:
            decoded = None
    if decoded is not None and len(fast) == len(items):
        return decoded
    slow = range(len(items)) if decoded is None else sorted(set(range(len(items))) - set(fast))
    rest = _one_by_one(items, slow, record)
    if decoded is None:
        return rest
    return Decoded(
        pa.concat_tables([decoded.table, rest.table]), decoded.rows + rest.rows, rest.failed
    )


def _read_block(items: list[bytes], record: str) -> pa.Table:
    header, schema = _container(record)
    bodies = [memoryview(item)[HEADER_SIZE:] for item in items]
    bodies.append(bodies[0])  # read back equal to row 0 only if every body was whole
    data = b"".join(bodies)
    block = io.BytesIO()
    fastavro.schemaless_writer(block, "long", len(bodies))
    fastavro.schemaless_writer(block, "long", len(data))
    frame = pl.read_avro(io.BytesIO(b"".join((header, block.getvalue(), data, _SYNC))))
    plain = frame.to_arrow()
    if plain.num_rows != len(bodies) or not plain.slice(0, 1).equals(plain.slice(len(items), 1)):
        raise ValueError("a body did not decode to exactly its own length")
    plain = plain.slice(0, len(items))
    target = schema_of(record)
    return pa.Table.from_arrays(
        [
            _convert(plain.column(f.name).combine_chunks(), avro["type"], f.type)
            for f, avro in zip(target, schema["fields"], strict=True)
        ],
        schema=target,
    )


def _one_by_one(items: Sequence[bytes], indices: Sequence[int], record: str) -> Decoded:
    codec = codec_for(record)
    records, rows, failed = [], [], []
    for index in indices:
        try:
            records.append(codec.decode(items[index]))
            rows.append(index)
        except DecodeError as exc:
            failed.append((index, str(exc)))
    table, misfits = to_table(records, schema_of(record))
    unfit = {position for position, _ in misfits}
    failed += [(rows[position], reason) for position, reason in misfits]
    return Decoded(table, [r for p, r in enumerate(rows) if p not in unfit], failed)


_CONTAINERS: dict[str, tuple[bytes, dict[str, Any]]] = {}


def _container(record: str) -> tuple[bytes, dict[str, Any]]:
    """The header of an Avro container of ``record`` in its plain form (cached)."""
    cached = _CONTAINERS.get(record)
    if cached is None:
        schema = SCHEMAS[record]
        out = io.BytesIO()
        fastavro.writer(out, _plain(schema), [], sync_marker=_SYNC)
        cached = _CONTAINERS[record] = (out.getvalue().removesuffix(_SYNC) + _SYNC, schema)
    return cached


def _plain(schema: Any) -> Any:
    """``schema`` with logical types dropped and enums read as their index."""
    if isinstance(schema, list):
        return [_plain(branch) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "enum":
        return "int"
    return {k: _plain(v) for k, v in schema.items() if k != "logicalType"}


def _convert(array: pa.Array, avro_type: Any, target: pa.DataType) -> pa.Array:
    """A plain-decoded column as the Arrow type of its Avro type."""
    if isinstance(avro_type, list):  # ["null", T]: nulls stay nulls
        (avro_type,) = [t for t in avro_type if t != "null"]
    if isinstance(avro_type, dict) and avro_type.get("type") == "enum":
        return pa.array(avro_type["symbols"], pa.string()).take(array)
    if isinstance(avro_type, dict) and avro_type.get("type") == "array":
        values = _convert(array.flatten(), avro_type["items"], target.value_type)
        offsets = pc.subtract(array.offsets, array.offsets[0])  # a slice's start at 0
        return pa.ListArray.from_arrays(
            offsets.cast(pa.int32()), values, type=target, mask=array.is_null()
        )
    if isinstance(avro_type, dict) and avro_type.get("type") == "record":
        return pa.StructArray.from_arrays(
            [
                _convert(array.field(f["name"]), f["type"], target.field(f["name"]).type)
                for f in avro_type["fields"]
            ],
            fields=list(target),
            mask=array.is_null(),
        )
    return array.cast(target)
