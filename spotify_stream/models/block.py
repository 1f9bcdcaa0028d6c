"""Many single-object records of one schema decoded at once, outside the GIL.

fastavro decodes a record at a time, holding the GIL (7 us a Track, 26 us an
EnrichedTrack). Laid end to end as one block of an Avro container, the bodies
are read by polars' Avro reader in Rust, with the GIL released, into Arrow
(about 1.4 us an EnrichedTrack).

polars reads the container with a plain copy of the schema: logical types as
their Avro values and enums as their index (the same binary encoding); its
reader panics on some of those types. The block ends with the first body once
more; reading it back equal to the first row proves every body decoded to
exactly its own length (a body with bytes left over would shift everything
after it). A block that fails raises ``BlockError``: the caller decodes its
records one by one, to tell the bad ones from the rest.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import fastavro
import pyarrow as pa

from spotify_stream.models.schemas import SCHEMAS
from spotify_stream.models.wire import HEADER_SIZE

_SYNC = b"spotify-stream\x00\x00"  # the container's 16-byte sync marker


class BlockError(ValueError):
    """The bodies cannot all be read as one block."""


def read_block(
    items: Sequence[bytes], record: str, columns: Sequence[str] | None = None
) -> pa.Table:
    """``items``, single-object encodings of the current ``record`` schema, as a table
    of plain Avro values (logical types as written, enums as their index); only
    ``columns`` when given (every body is still read whole)."""
    import polars as pl  # a heavy import that most commands never need

    bodies = [item[HEADER_SIZE:] for item in items]
    bodies.append(bodies[0])  # read back equal to row 0 only if every body was whole
    data = b"".join(bodies)
    block = io.BytesIO()
    fastavro.schemaless_writer(block, "long", len(bodies))
    fastavro.schemaless_writer(block, "long", len(data))
    container = b"".join((_header(record), block.getvalue(), data, _SYNC))
    try:
        plain = pl.read_avro(
            io.BytesIO(container), columns=list(columns) if columns else None
        ).to_arrow()
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, ValueError) as exc:
        raise BlockError(str(exc)) from None
    if plain.num_rows != len(bodies) or not plain.slice(0, 1).equals(plain.slice(len(items), 1)):
        raise BlockError("a body did not decode to exactly its own length")
    return plain.slice(0, len(items))


def has_enums(schema: Any) -> bool:
    """Whether ``schema`` holds an enum (read as an index in plain form)."""
    if isinstance(schema, list):
        return any(has_enums(branch) for branch in schema)
    if isinstance(schema, dict):
        return schema.get("type") == "enum" or any(has_enums(v) for v in schema.values())
    return False


_HEADERS: dict[str, bytes] = {}


def _header(record: str) -> bytes:
    """The header of an Avro container of ``record`` in its plain form (cached)."""
    header = _HEADERS.get(record)
    if header is None:
        out = io.BytesIO()
        fastavro.writer(out, _plain(SCHEMAS[record]), [], sync_marker=_SYNC)
        header = _HEADERS[record] = out.getvalue().removesuffix(_SYNC) + _SYNC
    return header


def _plain(schema: Any) -> Any:
    """``schema`` with logical types dropped and enums read as their index."""
    if isinstance(schema, list):
        return [_plain(branch) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "enum":
        return "int"
    return {k: _plain(v) for k, v in schema.items() if k != "logicalType"}
