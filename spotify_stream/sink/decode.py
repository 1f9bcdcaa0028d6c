"""Encoded records of one dataset to an Arrow table of its lake schema.

A flush holds messages as they came (single-object Avro). Decoding them one
by one with fastavro (26 us an EnrichedTrack, plus 5 us for
``Table.from_pylist``) would cost more than the enrichment itself, on the
event loop's thread. Instead, the bodies written with the current schema are
read as one block (``models.block``, polars in Rust, the GIL released) and
converted to the dataset's Arrow schema (``models.arrow``): timestamps, dates
and enum symbols rebuilt with Arrow. Anything else (records of an older
writer schema, or a block that cannot be read) takes fastavro, one record at
a time, where a body that does not decode is named and the rest is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from spotify_stream.models import SCHEMAS, codec_for
from spotify_stream.models.block import BlockError, read_block
from spotify_stream.models.codec import DecodeError
from spotify_stream.models.wire import HEADER_SIZE
from spotify_stream.sink.parquet import schema_of, to_table


@dataclass
class Decoded:
    table: pa.Table
    rows: list[int]  # index in the input of each row of ``table``
    failed: list[tuple[int, str]] = field(default_factory=list)  # (index, reason): misfits
    undecodable: list[tuple[int, str]] = field(default_factory=list)  # (index, reason)


def decode(items: Sequence[bytes], record: str) -> Decoded:
    """``items`` (single-object encoded ``record``\\ s) as a table of the dataset's schema."""
    current = codec_for(record).fingerprint
    fast = [i for i, item in enumerate(items) if item[2:HEADER_SIZE] == current]
    decoded = None
    if fast:
        try:
            decoded = Decoded(_read_block([items[i] for i in fast], record), fast)
        except (BlockError, pa.ArrowException):  # an enum index out of range, say
            decoded = None
    if decoded is not None and len(fast) == len(items):
        return decoded
    slow = range(len(items)) if decoded is None else sorted(set(range(len(items))) - set(fast))
    rest = _one_by_one(items, slow, record)
    if decoded is None:
        return rest
    return Decoded(
        pa.concat_tables([decoded.table, rest.table]),
        decoded.rows + rest.rows,
        rest.failed,
        rest.undecodable,
    )


def _read_block(items: list[bytes], record: str) -> pa.Table:
    plain, schema, target = read_block(items, record), SCHEMAS[record], schema_of(record)
    return pa.Table.from_arrays(
        [
            _convert(plain.column(f.name).combine_chunks(), avro["type"], f.type)
            for f, avro in zip(target, schema["fields"], strict=True)
        ],
        schema=target,
    )


def _one_by_one(items: Sequence[bytes], indices: Sequence[int], record: str) -> Decoded:
    codec = codec_for(record)
    records, rows, undecodable = [], [], []
    for index in indices:
        try:
            records.append(codec.decode(items[index]))
            rows.append(index)
        except DecodeError as exc:
            undecodable.append((index, str(exc)))
    table, misfits = to_table(records, schema_of(record))
    unfit = {position for position, _ in misfits}
    failed = [(rows[position], reason) for position, reason in misfits]
    return Decoded(table, [r for p, r in enumerate(rows) if p not in unfit], failed, undecodable)


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
