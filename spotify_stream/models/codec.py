"""Avro single-object encoding (Avro spec 1.9+) with fastavro.

A message body is ``C3 01`` + the writer schema's 8-byte CRC-64-AVRO fingerprint
(little-endian) + the Avro binary body. Readers look the fingerprint up among the
schemas they know (current and ``history/``) and resolve the writer schema into
their own, so producers and consumers can evolve independently.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from spotify_stream.models.schemas import HISTORY, SCHEMAS
from spotify_stream.models.wire import HEADER_SIZE, MAGIC


class DecodeError(ValueError):
    """A message that is not a readable single-object Avro body."""


def schema_fingerprint(parsed: dict[str, Any]) -> bytes:
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


#: Every writer schema a reader can resolve, by fingerprint.
_WRITERS: dict[bytes, dict[str, Any]] = {}
#: Schemas with their logical types dropped (values as written), by fingerprint.
_AS_WRITTEN: dict[bytes, dict[str, Any]] = {}
#: "Track" for spotify_stream.Track, by fingerprint.
_SHORT_NAMES: dict[bytes, str] = {}


def register_writer_schema(parsed: dict[str, Any]) -> bytes:
    """Make messages written with ``parsed`` readable; returns its fingerprint."""
    fp = schema_fingerprint(parsed)
    if fp not in _WRITERS:
        _WRITERS[fp] = parsed
        _AS_WRITTEN[fp] = fastavro.parse_schema(_without_logical_types(parsed))
        _SHORT_NAMES[fp] = parsed["name"].rsplit(".", 1)[-1]
    return fp


def _without_logical_types(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            k: _without_logical_types(v)
            for k, v in schema.items()
            if k != "logicalType" and not k.startswith("__")
        }
    if isinstance(schema, list):
        return [_without_logical_types(item) for item in schema]
    return schema


for _parsed in (*SCHEMAS.values(), *HISTORY):
    register_writer_schema(_parsed)


def _writer(data: bytes) -> bytes:
    """The writer schema fingerprint of a single-object message, checked."""
    if len(data) < HEADER_SIZE or data[:2] != MAGIC:
        raise DecodeError("not an Avro single-object message (missing C3 01 marker)")
    fp = data[2:HEADER_SIZE]
    if fp not in _WRITERS:
        raise DecodeError(f"unknown writer schema fingerprint {fp.hex()}")
    return fp


class AvroCodec:
    """Encodes records of one schema and decodes any known version into it.

    ``as_written=True`` decodes logical types as their Avro values (timestamps
    in ms, dates in days): a hot path that only compares them saves the
    datetime objects (1 us of a 7 us Track).
    """

    def __init__(self, parsed: dict[str, Any]) -> None:
        self.schema = parsed
        self.name: str = parsed["name"]
        self.fingerprint = register_writer_schema(parsed)
        self.header = MAGIC + self.fingerprint
        #: (writer fingerprint, as_written) -> (writer schema, reader schema or None)
        self._resolved: dict[tuple[bytes, bool], tuple[dict[str, Any], dict[str, Any] | None]] = {}

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(self.header)
        fastavro.schemaless_writer(buf, self.schema, record)
        return buf.getvalue()

    def decode(self, data: bytes, as_written: bool = False) -> dict[str, Any]:
        return self._read(_writer(data), data, as_written)

    def _read(self, fp: bytes, data: bytes, as_written: bool) -> dict[str, Any]:
        schemas = self._resolved.get((fp, as_written)) or self._resolve(fp, as_written)
        buf = io.BytesIO(data)
        buf.seek(HEADER_SIZE)
        try:
            record = fastavro.schemaless_reader(buf, *schemas)
        except Exception as exc:  # fastavro raises assorted types on corrupt bodies
            raise DecodeError(f"corrupt Avro body: {exc}") from exc
        if buf.tell() != len(data):  # would be copied into joined records as they are
            raise DecodeError(f"corrupt Avro body: {len(data) - buf.tell()} bytes after the record")
        return record

    def _resolve(self, fp: bytes, as_written: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
        if _WRITERS[fp]["name"] != self.name:
            raise DecodeError(f"message holds a {_WRITERS[fp]['name']}, expected {self.name}")
        schemas = _AS_WRITTEN if as_written else _WRITERS
        reader = None if fp == self.fingerprint else schemas[self.fingerprint]
        resolved = self._resolved[fp, as_written] = (schemas[fp], reader)
        return resolved


_CODECS: dict[str, AvroCodec] = {}


def codec_for(name: str) -> AvroCodec:
    """The shared codec of the current schema ``name`` (e.g. ``"Track"``)."""
    codec = _CODECS.get(name)
    if codec is None:
        codec = _CODECS[name] = AvroCodec(SCHEMAS[name])
    return codec


def decode_any(data: bytes, as_written: bool = False) -> tuple[str, dict[str, Any]]:
    """The record in ``data`` with its short schema name, resolved to the current schema."""
    fp = _writer(data)
    name = _SHORT_NAMES[fp]
    return name, codec_for(name)._read(fp, data, as_written)


def record_name(data: bytes) -> str:
    """The short name of the schema a message was written with (its header checked,
    its body not decoded)."""
    return _SHORT_NAMES[_writer(data)]


def items_in(data: bytes) -> list[bytes]:
    """The single-object encoded records of one message, undecoded: the message
    itself, or the items of a ``Batch``."""
    if record_name(data) != "Batch":
        return [data]
    return codec_for("Batch").decode(data)["records"]


def records_in(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The records of one message: its record, or every readable record of a ``Batch``
    (the agent owning the topic dead-letters the others)."""
    return [(name, record) for name, record, _ in encoded_records_in(data)[0]]


def encoded_records_in(
    data: bytes, as_written: bool = False, fields: Sequence[str] | None = None
) -> tuple[list[tuple[str, dict[str, Any], bytes]], list[tuple[bytes, str]]]:
    """Like ``records_in``, with each record's own single-object encoding; and the
    items of a ``Batch`` that do not decode, each with the reason (a ``Batch`` is
    read item by item: one bad item costs no other). Raises ``DecodeError`` when
    the message itself is unreadable.

    ``fields``: what the caller reads. Read as one block (a long ``Batch`` of
    the current schema, as written), records hold only these: the dicts are
    most of a block's cost. Records decoded one by one come whole.
    """
    name, record = decode_any(data, as_written)
    if name != "Batch":
        return [(name, record, data)], []
    items = record["records"]
    if as_written and len(items) >= _BLOCK_MIN:
        read = _read_as_block(items, fields)
        if read is not None:
            return read, []
    good, bad = [], []
    for item in items:
        try:
            good.append((*decode_any(item, as_written), item))
        except DecodeError as exc:
            bad.append((item, str(exc)))
    return good, bad


def single_records_in(
    values: Sequence[bytes], fields: Sequence[str] | None = None
) -> list[tuple[str, dict[str, Any], bytes]] | None:
    """``encoded_records_in`` for many messages that each hold one record, as written,
    read as one block when they are enough and all of one current schema (the
    per-record cost of a ``Batch`` for the form every producer writes); None
    otherwise: the caller reads them one by one."""
    if len(values) < _BLOCK_MIN or _SHORT_NAMES.get(values[0][2:HEADER_SIZE]) == "Batch":
        return None
    return _read_as_block(list(values), fields)


#: Batches this long or longer are read as one block (``models.block``: 2.8 us a
#: Track with the dicts built, against 7.3 us one by one; 1.0 us for 4 fields).
_BLOCK_MIN = 64


def _read_as_block(
    items: list[bytes], fields: Sequence[str] | None
) -> list[tuple[str, dict[str, Any], bytes]] | None:
    """Items all of one current schema without enums (whose values as written are its
    plain values), read as one block; None otherwise, or when the block cannot be
    read: the caller then decodes them one by one, naming the bad ones."""
    from spotify_stream.models.block import BlockError, has_enums, read_block

    header = items[0][:HEADER_SIZE]
    name = _SHORT_NAMES.get(header[2:])
    if name is None or any(item[:HEADER_SIZE] != header for item in items):
        return None
    codec = codec_for(name)
    if header[2:] != codec.fingerprint or has_enums(codec.schema):
        return None
    try:
        table = read_block(items, name, fields)
    except BlockError:
        return None
    names = table.column_names
    columns = [column.to_pylist() for column in table.columns]
    return [
        (name, dict(zip(names, row, strict=True)), item)
        for row, item in zip(zip(*columns, strict=True), items, strict=True)
    ]


def body_if_current(name: str, encoded: bytes) -> bytes | None:
    """The Avro body of ``encoded`` when it was written with the current schema ``name``."""
    if encoded[2:HEADER_SIZE] == codec_for(name).fingerprint:
        return encoded[HEADER_SIZE:]
    return None


def encode_batch(bodies: list[bytes]) -> bytes:
    """Many encoded records of one partition as one ``Batch`` message (opt-in input form).

    Written directly, as Avro lays out an array of bytes (one block, then a 0
    count): fastavro took 0.82 ms for 1,000 records of 400 to 600 bytes, this
    0.12 ms, and every track the enrichment hands the trainer goes through here
    (``test_codec`` checks the bytes are fastavro's).
    """
    parts = [codec_for("Batch").header]
    if bodies:
        parts.append(_long(len(bodies)))
        for body in bodies:
            parts.append(_long(len(body)))
            parts.append(body)
    parts.append(b"\x00")
    return b"".join(parts)


_LONGS: dict[int, bytes] = {}


def _long(value: int) -> bytes:
    """Avro's long encoding (zig-zag, then 7 bits a byte) of ``value`` >= 0; the lengths
    of records repeat, so each is encoded once."""
    encoded = _LONGS.get(value)
    if encoded is None:
        out, rest = bytearray(), value << 1
        while rest > 0x7F:
            out.append(rest & 0x7F | 0x80)
            rest >>= 7
        out.append(rest)
        encoded = bytes(out)
        if len(_LONGS) < 1 << 16:
            _LONGS[value] = encoded
    return encoded


def millis(value: Any) -> int:
    """A timestamp-millis value as decoded (datetime) or as written (int), in ms."""
    return value if isinstance(value, int) else int(value.timestamp() * 1000)
