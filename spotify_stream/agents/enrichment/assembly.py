"""The EnrichedTrack as consecutive encoded parts (``models.parts``): which fields
come from where, and the parts the join puts together, each encoded once and cached."""

from __future__ import annotations

import struct
from typing import Any

from spotify_stream.agents.pipeline import Record
from spotify_stream.ml.clustering import VECTOR
from spotify_stream.models import SCHEMAS, codec_for
from spotify_stream.models.parts import RecordParts
from spotify_stream.tables.dimensions import DimensionStore

TRACK_FIELDS = [f["name"] for f in SCHEMAS["Track"]["fields"]]
#: What the join reads of a track as it arrives: it copies the rest encoded.
JOIN_FIELDS = ("track_id", "album_id", "artist_id", "updated_at")
_NOT_FEATURES = {"track_id", "duration_ms", "updated_at"}
FEATURE_FIELDS = [
    f["name"] for f in SCHEMAS["AudioFeatures"]["fields"] if f["name"] not in _NOT_FEATURES
]
#: EnrichedTrack field -> Album field
ALBUM_FIELDS = {
    "album_name": "name",
    "album_type": "album_type",
    "release_date": "release_date",
    "release_date_precision": "release_date_precision",
    "label": "label",
    "album_popularity": "popularity",
    "album_total_tracks": "total_tracks",
    "album_updated_at": "updated_at",
}
#: EnrichedTrack field -> Artist field
ARTIST_FIELDS = {
    "artist_name": "name",
    "artist_popularity": "popularity",
    "artist_followers": "followers",
    "genres": "genres",
    "artist_updated_at": "updated_at",
}

_DISTANCE = struct.Struct("<d")


def missing_parts(track: Record, album: Any, artist: Any, features: Any) -> list[str]:
    """Referenced dimensions not yet known (a track without album_id misses no album).

    ``album``, ``artist``, ``features``: records or encoded parts; None while unknown.
    """
    missing = []
    if track.get("album_id") and album is None:
        missing.append("album")
    if track.get("artist_id") and artist is None:
        missing.append("artist")
    if features is None:
        missing.append("features")
    return missing


def features_part(features: Record) -> Record:
    """The "features" part of an enriched track, from an AudioFeatures record."""
    part = {name: features.get(name) for name in FEATURE_FIELDS}
    part["features_updated_at"] = features["updated_at"]
    return part


def encode_distance(distance: float) -> bytes:
    """The "distance" part: Avro's ["null", "double"], branch 1 then the double, written
    directly (fastavro took 2 us a track; ``test_enrichment`` checks the bytes agree)."""
    return b"\x02" + _DISTANCE.pack(distance)


#: EnrichedTrack as consecutive field groups (see ``models.parts``).
PARTS = RecordParts(
    "EnrichedTrack",
    {
        "track": TRACK_FIELDS,
        "album": list(ALBUM_FIELDS),
        "artist": list(ARTIST_FIELDS),
        "features": [*FEATURE_FIELDS, "features_updated_at"],
        "status": ["complete", "missing"],
        "cluster": ["cluster_id", "model_version"],
        "distance": ["cluster_distance"],
    },
)


class Assembler:
    """The parts of enriched tracks, encoded once: dimensions per stored version,
    statuses, cluster labels; and the parts read back from stored values."""

    def __init__(self, dimensions: DimensionStore, cache_size: int) -> None:
        self.dimensions = dimensions
        self.cache_size = max(1, cache_size)
        self.header = PARTS.header
        self.null = {kind: PARTS.encode(kind, {}) for kind in ("album", "artist", "features")}
        self.no_cluster = PARTS.encode("cluster", {}) + PARTS.encode("distance", {})
        # kind -> id -> encoded part of the stored version (``Enricher.on_dimensions`` refreshes it)
        self._dimension_parts: dict[str, dict[str, bytes]] = {"album": {}, "artist": {}}
        self._status_cache: dict[tuple[str, ...], bytes] = {}
        self._cluster_cache: dict[tuple[int, int], bytes] = {}
        self._enriched = codec_for("EnrichedTrack")

    def dimension_part(self, kind: str, id_: str | None) -> bytes | None:
        """The encoded album or artist part of dimension ``id_``; None while it is unknown."""
        if not id_:
            return None
        part = self._dimension_parts[kind].get(id_)
        if part is None:
            record = self.dimensions.get(kind, id_)
            if record is None:
                return None
            part = self.encode_part(kind, record)
        return part

    def encode_part(self, kind: str, record: Record) -> bytes:
        fields = ALBUM_FIELDS if kind == "album" else ARTIST_FIELDS
        part = PARTS.encode(kind, {out: record.get(src) for out, src in fields.items()})
        cache = self._dimension_parts[kind]
        if len(cache) >= self.cache_size:
            cache.clear()
        cache[record[f"{kind}_id"]] = part
        return part

    def status(self, missing: list[str]) -> bytes:
        slot = tuple(missing)
        part = self._status_cache.get(slot)
        if part is None:
            part = self._status_cache[slot] = PARTS.encode(
                "status", {"complete": not missing, "missing": missing}
            )
        return part

    def cluster_part(self, label: int, version: int, distance: float) -> bytes:
        slot = (label, version)
        part = self._cluster_cache.get(slot)
        if part is None:
            if len(self._cluster_cache) > 10_000:
                self._cluster_cache.clear()
            part = self._cluster_cache[slot] = PARTS.encode(
                "cluster", {"cluster_id": label, "model_version": version}
            )
        return part + encode_distance(distance)

    def missing_in(self, enriched: bytes) -> list[str]:
        return self._enriched.decode(enriched)["missing"]

    def stored_track(self, enriched: bytes) -> Record:
        """The track fields of an emitted record: its first part, decoded alone."""
        return PARTS.decode("track", enriched[len(PARTS.header) :])

    def features_of(self, stored: bytes) -> Record:
        """The features part of a ``features`` table value, decoded."""
        return PARTS.decode("features", stored[VECTOR.size :])
