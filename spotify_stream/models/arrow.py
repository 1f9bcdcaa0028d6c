"""Avro schema -> Arrow schema, so the lake's Parquet columns follow the contract."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

_PRIMITIVES = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "bytes": pa.binary(),
}
_LOGICAL = {
    "date": pa.date32(),
    "timestamp-millis": pa.timestamp("ms", tz="UTC"),
    "timestamp-micros": pa.timestamp("us", tz="UTC"),
}


def _non_null(avro_type: Any) -> tuple[Any, bool]:
    """Unwrap ``["null", T]`` into ``(T, nullable=True)``."""
    if isinstance(avro_type, list):
        rest = [t for t in avro_type if t != "null"]
        if len(rest) != 1:
            raise TypeError(f"only [null, T] unions map to Arrow, got {avro_type}")
        return rest[0], len(rest) < len(avro_type)
    return avro_type, False


def arrow_type(avro_type: Any) -> pa.DataType:
    avro_type, _ = _non_null(avro_type)
    if isinstance(avro_type, str):
        return _PRIMITIVES[avro_type]
    logical = avro_type.get("logicalType")
    if logical in _LOGICAL:
        return _LOGICAL[logical]
    kind = avro_type["type"]
    if kind == "enum":
        return pa.string()
    if kind == "array":
        return pa.list_(arrow_type(avro_type["items"]))
    if kind == "record":
        return pa.struct([arrow_field(f) for f in avro_type["fields"]])
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    raise TypeError(f"no Arrow mapping for Avro type {avro_type}")


def arrow_field(avro_field: dict[str, Any]) -> pa.Field:
    _, nullable = _non_null(avro_field["type"])
    return pa.field(avro_field["name"], arrow_type(avro_field["type"]), nullable=nullable)


def arrow_schema(parsed: dict[str, Any]) -> pa.Schema:
    """The Arrow schema of an Avro record schema (field order kept)."""
    return pa.schema([arrow_field(f) for f in parsed["fields"]])
