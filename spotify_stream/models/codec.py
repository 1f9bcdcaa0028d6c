"""Avro single-object encoding (Avro spec 1.9+) with fastavro.

A message body is ``C3 01`` + the writer schema's 8-byte CRC-64-AVRO fingerprint
(little-endian) + the Avro binary body. Readers look the fingerprint up among the
schemas they know (current and ``history/``) and resolve the writer schema into
their own, so producers and consumers can evolve independently.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from spotify_stream.models.schemas import HISTORY, SCHEMAS

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8


class DecodeError(ValueError):
    """A message that is not a readable single-object Avro body."""


def schema_fingerprint(parsed: dict[str, Any]) -> bytes:
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


#: Every writer schema a reader can resolve, by fingerprint.
_WRITERS: dict[bytes, dict[str, Any]] = {}


def register_writer_schema(parsed: dict[str, Any]) -> bytes:
    """Make messages written with ``parsed`` readable; returns its fingerprint."""
    fp = schema_fingerprint(parsed)
    _WRITERS.setdefault(fp, parsed)
    return fp


for _parsed in (*SCHEMAS.values(), *HISTORY):
    register_writer_schema(_parsed)


class AvroCodec:
    """Encodes records of one schema and decodes any known version into it."""

    def __init__(self, parsed: dict[str, Any]) -> None:
        self.schema = parsed
        self.name: str = parsed["name"]
        self.fingerprint = register_writer_schema(parsed)
        self._header = MAGIC + self.fingerprint

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(self._header)
        fastavro.schemaless_writer(buf, self.schema, record)
        return buf.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        if len(data) < HEADER_SIZE or data[:2] != MAGIC:
            raise DecodeError("not an Avro single-object message (missing C3 01 marker)")
        fp = data[2:HEADER_SIZE]
        writer = _WRITERS.get(fp)
        if writer is None:
            raise DecodeError(f"unknown writer schema fingerprint {fp.hex()}")
        reader = None if fp == self.fingerprint else self.schema
        if reader is not None and writer["name"] != self.name:
            raise DecodeError(f"message holds a {writer['name']}, expected {self.name}")
        try:
            return fastavro.schemaless_reader(io.BytesIO(data[HEADER_SIZE:]), writer, reader)
        except Exception as exc:  # fastavro raises assorted types on corrupt bodies
            raise DecodeError(f"corrupt Avro body: {exc}") from exc


_CODECS: dict[str, AvroCodec] = {}


def codec_for(name: str) -> AvroCodec:
    """The shared codec of the current schema ``name`` (e.g. ``"Track"``)."""
    codec = _CODECS.get(name)
    if codec is None:
        codec = _CODECS[name] = AvroCodec(SCHEMAS[name])
    return codec


def decode_any(data: bytes) -> tuple[str, dict[str, Any]]:
    """The record in ``data`` with its short schema name, resolved to the current schema."""
    if len(data) < HEADER_SIZE or data[:2] != MAGIC:
        raise DecodeError("not an Avro single-object message (missing C3 01 marker)")
    writer = _WRITERS.get(data[2:HEADER_SIZE])
    if writer is None:
        raise DecodeError(f"unknown writer schema fingerprint {data[2:HEADER_SIZE].hex()}")
    name = writer["name"].rsplit(".", 1)[-1]
    return name, codec_for(name).decode(data)


def records_in(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The records of one message: its record, or every record of a ``Batch``."""
    return [(name, record) for name, record, _ in encoded_records_in(data)]


def encoded_records_in(data: bytes) -> list[tuple[str, dict[str, Any], bytes]]:
    """Like ``records_in``, with each record's own single-object encoding."""
    name, record = decode_any(data)
    if name != "Batch":
        return [(name, record, data)]
    return [(*decode_any(item), item) for item in record["records"]]


def body_if_current(name: str, encoded: bytes) -> bytes | None:
    """The Avro body of ``encoded`` when it was written with the current schema ``name``."""
    if encoded[2:HEADER_SIZE] == codec_for(name).fingerprint:
        return encoded[HEADER_SIZE:]
    return None


def encode_batch(bodies: list[bytes]) -> bytes:
    """Many encoded records of one partition as one ``Batch`` message (opt-in input form)."""
    return codec_for("Batch").encode({"records": bodies})


def millis(value: Any) -> int:
    """A timestamp-millis value as decoded (datetime) or as written (int), in ms."""
    return value if isinstance(value, int) else int(value.timestamp() * 1000)
