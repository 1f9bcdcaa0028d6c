"""A record encoded as consecutive groups of its fields.

Avro's binary encoding of a record is the concatenation of its fields'
encodings, in schema order. So a wide record can be assembled from parts
encoded once and reused: the enriched track is the track's own body (its
fields come first, unchanged) + the album part + the artist part (cached per
dimension version) + the features part (stored encoded) + two status fields.
Encoding 40 fields with fastavro costs ~28 us; concatenating cached parts ~1 us.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro

from spotify_stream.models.codec import schema_fingerprint
from spotify_stream.models.schemas import SCHEMAS
from spotify_stream.models.wire import MAGIC


class RecordParts:
    def __init__(self, name: str, groups: dict[str, list[str]]) -> None:
        full = SCHEMAS[name]
        fields = {f["name"]: f for f in full["fields"]}
        ordered = [n for names in groups.values() for n in names]
        if ordered != list(fields):
            raise ValueError(f"groups must cover the fields of {name} in order")
        self.header = MAGIC + schema_fingerprint(full)
        self._schemas = {
            group: fastavro.parse_schema(
                {
                    "type": "record",
                    "name": f"{name}_{group}",
                    "namespace": "spotify_stream.parts",
                    "fields": [_plain(fields[n]) for n in names],
                }
            )
            for group, names in groups.items()
        }

    def encode(self, group: str, values: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self._schemas[group], values)
        return buf.getvalue()

    def decode(self, group: str, body: bytes) -> dict[str, Any]:
        return fastavro.schemaless_reader(io.BytesIO(body), self._schemas[group], None)


def _plain(field: dict[str, Any]) -> dict[str, Any]:
    """A field as JSON schema, without the parse hints fastavro added."""
    return {k: v for k, v in field.items() if not k.startswith("__")}
