"""Records of one dataset as a Parquet file, with the Arrow schema of its Avro schema.

zstd compression, statistics on (Athena skips row groups by min/max), row
groups of ``parquet_row_group_rows``. Records that do not fit the schema are
returned with the reason instead of breaking the file.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from spotify_stream.models import SCHEMAS
from spotify_stream.models.arrow import arrow_schema

_SCHEMAS: dict[str, pa.Schema] = {}


def schema_of(record: str) -> pa.Schema:
    """The Arrow schema of the Avro record ``record`` (e.g. ``"EnrichedTrack"``)."""
    schema = _SCHEMAS.get(record)
    if schema is None:
        schema = _SCHEMAS[record] = arrow_schema(SCHEMAS[record])
    return schema


def to_table(
    records: list[dict[str, Any]], schema: pa.Schema
) -> tuple[pa.Table, list[tuple[int, str]]]:
    """The records that fit ``schema`` as a table, and (index, reason) for those that do not.

    The whole list is converted at once; only when that fails is each record
    tried alone, so one bad record costs a slow pass, never the batch.
    """
    try:
        return pa.Table.from_pylist(records, schema=schema), []
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        pass
    good, rejected = [], []
    for index, record in enumerate(records):
        try:
            pa.Table.from_pylist([record], schema=schema)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            rejected.append((index, f"does not fit the Parquet schema: {exc}"))
        else:
            good.append(record)
    return pa.Table.from_pylist(good, schema=schema), rejected


def encode(table: pa.Table, row_group_rows: int) -> bytes:
    """``table`` as Parquet bytes (CPU-bound: call it in a thread for large tables)."""
    out = io.BytesIO()
    pq.write_table(
        table,
        out,
        compression="zstd",
        write_statistics=True,
        row_group_size=row_group_rows,
    )
    return out.getvalue()
