"""Faust records generated from the Avro schemas (nothing typed twice).

Faust agents (issue: stream core) import ``Artist``, ``Track``... from here.
"""

from __future__ import annotations

import datetime as dt
import types
from typing import Any, Optional

import faust

from spotify_stream.models.schemas import SCHEMAS

_PY = {
    "string": str,
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": bool,
    "bytes": bytes,
}
_PY_LOGICAL = {"date": dt.date, "timestamp-millis": dt.datetime, "timestamp-micros": dt.datetime}


def python_type(avro_type: Any) -> Any:
    if isinstance(avro_type, list):
        rest = [t for t in avro_type if t != "null"]
        inner = python_type(rest[0]) if len(rest) == 1 else Any
        return Optional[inner] if "null" in avro_type else inner  # noqa: UP045 (faust reads typing.Optional)
    if isinstance(avro_type, str):
        return _PY[avro_type]
    if avro_type.get("logicalType") in _PY_LOGICAL:
        return _PY_LOGICAL[avro_type["logicalType"]]
    kind = avro_type["type"]
    if kind == "enum":
        return str
    if kind == "array":
        return list[python_type(avro_type["items"])]
    return _PY[kind]


def record_class(parsed: dict[str, Any]) -> type[faust.Record]:
    """A ``faust.Record`` subclass with the schema's fields, required ones first."""
    fields = parsed["fields"]
    ordered = [f for f in fields if "default" not in f] + [f for f in fields if "default" in f]
    short = parsed["name"].rsplit(".", 1)[-1]

    def body(ns: dict[str, Any]) -> None:
        ns["__annotations__"] = {f["name"]: python_type(f["type"]) for f in ordered}
        ns["__module__"] = __name__
        ns["__doc__"] = parsed.get("doc")
        for f in ordered:
            if "default" in f:
                # A shared mutable [] default would leak between records; arrays
                # default to None in Faust and to [] on the wire.
                default = f["default"]
                ns[f["name"]] = None if isinstance(default, list) else default

    return types.new_class(
        short, (faust.Record,), {"namespace": parsed["name"], "serializer": "json"}, body
    )


RECORDS: dict[str, type[faust.Record]] = {name: record_class(s) for name, s in SCHEMAS.items()}

Artist = RECORDS["Artist"]
Album = RECORDS["Album"]
Track = RECORDS["Track"]
AudioFeatures = RECORDS["AudioFeatures"]
Play = RECORDS["Play"]
DeadLetter = RECORDS["DeadLetter"]
