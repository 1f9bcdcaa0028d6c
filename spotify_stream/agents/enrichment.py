"""The enrichment join: tracks + album + primary artist + audio features.

Tracks, features and join retries share the key (track_id) and the partition
count, so one agent sees everything about a track in order. Artists and albums
come from the worker's broadcast ``DimensionStore``.

- A track whose album, artist or features are missing waits in ``pending``
  (track_id -> first-seen time + track). ``index`` maps each album and artist
  id to the tracks of this worker that reference it, so an arriving or changed
  dimension sends a retry for exactly those tracks; arriving features retry
  their own track directly.
- After ``join_max_wait`` a waiting track is emitted with nulls, ``complete``
  false and the missing parts named. A later arrival re-emits it complete.
- A track with all its features waits, the same way, for the first cluster
  model (a cold start), so it is emitted once, labelled, rather than once
  unlabelled and again labelled.
- ``enriched`` holds what was last emitted; its changelog *is* the output topic
  ``spotify.tracks.enriched``. A record is emitted only when its bytes differ
  from the stored ones, so retries and replays never emit duplicates with
  different content, and a changed dimension re-emits every affected track.
"""

from __future__ import annotations

import logging
import struct
import time
from collections import defaultdict
from collections.abc import Iterable
from enum import Enum
from typing import Any

import numpy as np
from faust.types import EventT

from spotify_stream import topics
from spotify_stream.agents.clustering import ModelHolder
from spotify_stream.agents.pipeline import Pipeline, Record
from spotify_stream.faust_ext.partitioned import PartitionedTable
from spotify_stream.ml.clustering import VECTOR, pack_vector, unpack_vectors
from spotify_stream.models import SCHEMAS, codec_for
from spotify_stream.models.codec import body_if_current, encode_batch, millis
from spotify_stream.models.parts import RecordParts
from spotify_stream.tables.dimensions import DimensionStore

log = logging.getLogger(__name__)

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

_SINCE = struct.Struct(">q")
_DISTANCE = struct.Struct("<d")


class Retry(bytes, Enum):
    """What a message of the join-retry topic asks of the partition's owner (its value;
    its key is the track id, but for ``LABEL``)."""

    DIMENSION = b"dimension"  # a dimension came or changed: join the track again
    EXPIRE = b"expire"  # the track waited its maximum: join it, complete or not
    LABEL = b"label"  # label, in bulk, the partition's tracks emitted before the first model


#: The key of a ``LABEL`` retry (one message per partition, not per track).
_LABEL_KEY = b"\x00label"
#: Enriched tracks per Batch message to the cluster trainer, and feature vectors per
#: vectors message.
_TRAINING_BATCH = 1000
_VECTORS_BATCH = 10_000


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


class Enricher:
    def __init__(
        self,
        pipeline: Pipeline,
        dimensions: DimensionStore,
        features: PartitionedTable,
        pending: PartitionedTable,
        enriched: PartitionedTable,
        models: ModelHolder,
    ) -> None:
        self.pipeline = pipeline
        self.dimensions = dimensions
        self.features = features  # track_id -> packed vector (``VECTOR``) + "features" part
        self.pending = pending  # track_id -> first seen (ms, 8 bytes) + encoded Track
        self.enriched = enriched  # track_id -> encoded EnrichedTrack, as emitted
        self.models = models  # the newest cluster model, for tracks whose features join
        self.training_topic = pipeline.internal(topics.CLUSTER_TRAINING)
        self._training: list[bytes] = []  # emitted bodies for the trainer, not yet sent
        self._vectors: list[bytes] = []  # packed features for the trainer, not yet sent
        #: partition -> tracks emitted with features but before the first model, and
        #: those of them whose partition's label message is on its way
        self.unlabelled: dict[int, set[bytes]] = {}
        self.labelling: dict[int, set[bytes]] = {}
        self.max_wait_ms = int(pipeline.settings.join_max_wait * 1000)
        self.retry_topic = pipeline.internal(topics.JOIN_RETRY)  # track_id -> dimension|expire
        #: kind -> dimension id -> the tracks of this worker that reference it
        self.index: dict[str, defaultdict[str, set[str]]] = {
            "album": defaultdict(set),
            "artist": defaultdict(set),
        }
        self.waiting: dict[str, int] = {}  # track_id -> first seen (ms), for the expiry timer
        self._track = codec_for("Track")
        self._enriched = codec_for("EnrichedTrack")
        self._stats = pipeline.stats.events
        self._parts = PARTS
        self._null = {kind: PARTS.encode(kind, {}) for kind in ("album", "artist", "features")}
        # kind -> id -> encoded part of the stored version (``on_dimensions`` refreshes it)
        self._dimension_parts: dict[str, dict[str, bytes]] = {"album": {}, "artist": {}}
        self._status_cache: dict[tuple[str, ...], bytes] = {}
        self._cluster_cache: dict[tuple[int, int], bytes] = {}
        self._no_cluster = PARTS.encode("cluster", {}) + PARTS.encode("distance", {})

    def status(self) -> dict[str, Any]:
        """What the monitoring pages show of the join: tracks waiting for a dimension,
        tracks emitted before the first model and not yet labelled, and the model."""
        model = self.models.model
        return {
            "pending_joins": len(self.waiting),
            "unlabelled_tracks": sum(
                len(keys)
                for waiting in (self.unlabelled, self.labelling)
                for keys in waiting.values()
            ),
            "cluster_model": None
            if model is None
            else {"version": model.version, "k": model.k, "rows_seen": model.rows_seen},
        }

    def is_waiting(self, track_id: str) -> bool:
        return track_id in self.waiting

    async def handle(self, events: Iterable[EventT]) -> None:
        pipeline = self.pipeline
        labels: set[int] = set()  # partitions to label, in bulk
        for event in events:
            message = event.message
            partition = message.partition
            if message.topic == self.retry_topic:
                pipeline.stats.consumed(message.topic, partition, message.offset)
                retry = Retry(message.value)
                if retry is Retry.LABEL:
                    labels.add(partition)
                    continue
                await self.rejoin(partition, message.key.decode(), expire=retry is Retry.EXPIRE)
            elif message.topic == topics.TRACKS.name:
                # Tracks keep updated_at in ms: the join only compares it.
                tracks = pipeline.encoded_records(
                    event, "Track", "track_id", as_written=True, fields=JOIN_FIELDS
                )
                await self.on_tracks(partition, tracks)
            else:
                for features in pipeline.records(event, "AudioFeatures", "track_id"):
                    await self.on_features(partition, features)
        for partition in labels:
            await self._label(partition, list(self.labelling.pop(partition, ())))
        await self._send_training()

    async def on_tracks(self, partition: int, tracks: list[tuple[Record, bytes]]) -> None:
        """Join the tracks of one message; their state is read in two bulk lookups."""
        keys = [track["track_id"].encode() for track, _ in tracks]
        states: Iterable[tuple[bytes | None, bytes | None]]
        clusters: list[bytes | None]
        if len(set(keys)) < len(keys):  # a track twice: read each state after the last join
            states = (
                (self.enriched.get(partition, k), self.features.get(partition, k)) for k in keys
            )
            clusters = [None] * len(keys)  # each assigned by its join
        else:
            states = list(
                zip(
                    self.enriched.get_many(partition, keys),
                    self.features.get_many(partition, keys),
                    strict=True,
                )
            )
            clusters = self._clusters([f if c is None else None for c, f in states])
        waiting = self.waiting
        with self.enriched.batch(partition):
            for (track, encoded), key, (current, features), cluster in zip(
                tracks, keys, states, clusters, strict=True
            ):
                pending = self.pending.get(partition, key) if track["track_id"] in waiting else None
                if (current is not None or pending is not None) and self._stale(
                    track, current, pending
                ):
                    self._stats["stale_tracks"] += 1  # an older version arrived late: latest wins
                    continue
                await self._join(
                    partition, key, track, encoded, current, features, pending, cluster=cluster
                )

    def _stale(self, track: Record, current: bytes | None, pending: bytes | None) -> bool:
        """Whether ``track`` is older than the version emitted or waiting."""
        if current is not None:
            stored = self._stored_track(current)["updated_at"]
        else:
            stored = self._track.decode(pending[_SINCE.size :])["updated_at"]
        return millis(stored) > millis(track["updated_at"])

    async def on_features(self, partition: int, features: Record) -> None:
        key = features["track_id"].encode()
        old = self.features.get(partition, key)
        if (
            old is not None
            and self._features_of(old)["features_updated_at"] > features["updated_at"]
        ):
            self._stats["stale_features"] += 1
            return
        value = pack_vector(features) + self._parts.encode("features", features_part(features))
        if value == old:
            return
        await self.features.put(partition, key, value)
        self._vectors.append(value[: VECTOR.size])
        await self.rejoin(partition, features["track_id"])

    async def rejoin(self, partition: int, track_id: str, expire: bool = False) -> None:
        """Join ``track_id`` again with what is known now (retry, expiry, new features)."""
        key = track_id.encode()
        pending = self.pending.get(partition, key)
        current = self.enriched.get(partition, key)
        features = self.features.get(partition, key)
        if pending is not None:
            encoded = pending[_SINCE.size :]
            since = _SINCE.unpack_from(pending)[0]
            expire = expire and _now_ms() >= since + self.max_wait_ms
            track = self._track.decode(encoded)
            await self._join(partition, key, track, encoded, current, features, pending, expire)
        elif current is not None:
            track = self._stored_track(current)
            await self._join(partition, key, track, None, current, features)

    async def _join(
        self,
        partition: int,
        key: bytes,
        track: Record,
        encoded: bytes | None,
        current: bytes | None,
        features: bytes | None,
        pending: bytes | None = None,
        expire: bool = False,
        cluster: bytes | None = None,
    ) -> None:
        """Emit the track joined with what is known, or keep it waiting.

        ``encoded``: the track's single-object encoding, when there is one;
        ``current``, ``features``, ``pending``: the track's stored state;
        ``cluster``: its cluster parts, when the caller assigned them in bulk.
        """
        album = self._dimension_part("album", track.get("album_id"))
        artist = self._dimension_part("artist", track.get("artist_id"))
        missing = missing_parts(track, album, artist, features)
        self._remember(track)
        awaits_model = not missing and self._awaits_model(features)
        if current is None and not expire and (missing or awaits_model):
            since = _SINCE.unpack_from(pending)[0] if pending else _now_ms()
            value = _SINCE.pack(since) + (encoded or self._track.encode(track))
            if value != pending:
                await self.pending.put(partition, key, value)
            self.waiting.setdefault(track["track_id"], since)
            if awaits_model:  # ``label`` joins it again once the first model is known
                self.unlabelled.setdefault(partition, set()).add(key)
            return
        if current is not None and missing and set(missing) - set(self._missing_in(current)):
            # What was emitted had this part: our state is behind the output, as after a
            # crash that replays a track before the features it was joined with. The
            # part's own replay retries the track; emitting now would step back.
            self._stats["held_back"] += 1
            return
        # (a track of an older schema came decoded whole: its part is encoded anew)
        track_part = body_if_current("Track", encoded) if encoded else None
        learn = features is not None
        if cluster is None:
            cluster, learn = self._cluster_of(current, features)
        body = b"".join(
            (
                self._parts.header,
                track_part or self._parts.encode("track", track),
                album or self._null["album"],
                artist or self._null["artist"],
                features[VECTOR.size :] if features else self._null["features"],
                self._status(missing),
                cluster,
            )
        )
        if features is not None and self.models.model is None:
            self.unlabelled.setdefault(partition, set()).add(key)  # ``label`` labels it
        elif partition in self.unlabelled:
            self.unlabelled[partition].discard(key)
        if body != current:
            await self.enriched.put(partition, key, body)
            if learn:
                self._training.append(body)
            self._stats["emitted" if current is None else "re-emitted"] += 1
            if missing:
                self._stats["emitted_incomplete"] += 1
        if pending is not None:
            await self.pending.put(partition, key, None)
            self.waiting.pop(track["track_id"], None)

    def _awaits_model(self, features: bytes | None) -> bool:
        """Whether a track with these features waits for the first model: one with all
        its features is labelled when emitted, so the lake gets one row for it, not an
        unlabelled one and then a labelled one."""
        if features is None or self.models.model is not None:
            return False
        return not np.isnan(unpack_vectors([features[: VECTOR.size]])).any()

    def _missing_in(self, enriched: bytes) -> list[str]:
        return self._enriched.decode(enriched)["missing"]

    def _stored_track(self, enriched: bytes) -> Record:
        """The track fields of an emitted record: its first part, decoded alone."""
        return self._parts.decode("track", enriched[len(self._parts.header) :])

    def _features_of(self, stored: bytes) -> Record:
        """The features part of a ``features`` table value, decoded."""
        return self._parts.decode("features", stored[VECTOR.size :])

    def _clusters(self, features: list[bytes | None]) -> list[bytes | None]:
        """The cluster parts of tracks joining for the first time (None: not assigned
        here), assigned in one step with the newest model."""
        model = self.models.model
        at = [i for i, f in enumerate(features) if f is not None]
        parts: list[bytes | None] = [None] * len(features)
        if model is None or not at:
            return parts
        vectors = unpack_vectors([features[i][: VECTOR.size] for i in at])  # type: ignore[index]
        complete = ~np.isnan(vectors).any(axis=1)
        labels, distances = model.assign(np.nan_to_num(vectors))  # NaN rows: not assigned
        # the parts as bytes: a prefix per cluster, then each distance's 8 bytes
        prefixes = [self._cluster_part(c, model.version, 0.0)[:-8] for c in range(model.k)]
        packed = distances.astype("<f8").tobytes()
        for j, (i, ok, label) in enumerate(
            zip(at, complete.tolist(), labels.tolist(), strict=True)
        ):
            if ok:
                parts[i] = prefixes[label] + packed[8 * j : 8 * j + 8]
        return parts

    def _cluster_of(self, current: bytes | None, features: bytes | None) -> tuple[bytes, bool]:
        """A track's cluster parts, and whether its features are new to the trainer.

        Assigned when the features join or change; a re-emit for another reason keeps
        what was emitted, so a replay after a crash emits the same record. Tracks
        emitted before the first model are the exception: ``label`` retries them once
        a model is known, and they are labelled then.
        """
        if features is None:
            return self._no_cluster, False
        if current is not None:
            emitted = self._enriched.decode(current)
            same = self._features_of(features)["features_updated_at"]
            if emitted["features_updated_at"] == same:
                if emitted["model_version"] is None:  # emitted before the first model
                    (part,) = self._clusters([features])
                    return part or self._no_cluster, False
                part = self._cluster_part(
                    emitted["cluster_id"], emitted["model_version"], emitted["cluster_distance"]
                )
                return part, False
        (part,) = self._clusters([features])
        return part or self._no_cluster, True

    def _cluster_part(self, label: int, version: int, distance: float) -> bytes:
        slot = (label, version)
        part = self._cluster_cache.get(slot)
        if part is None:
            if len(self._cluster_cache) > 10_000:
                self._cluster_cache.clear()
            part = self._cluster_cache[slot] = self._parts.encode(
                "cluster", {"cluster_id": label, "model_version": version}
            )
        return part + encode_distance(distance)

    async def _send_training(self) -> None:
        """Hand the trainer the features that arrived or changed (to learn from) and the
        tracks whose features joined or changed (for its profiles and the index)."""
        vectors, self._vectors = self._vectors, []
        for start in range(0, len(vectors), _VECTORS_BATCH):
            await self.pipeline.send(
                self.training_topic,
                topics.TRAINING_VECTORS_KEY,
                b"".join(vectors[start : start + _VECTORS_BATCH]),
            )
        bodies, self._training = self._training, []
        for start in range(0, len(bodies), _TRAINING_BATCH):
            chunk = bodies[start : start + _TRAINING_BATCH]
            await self.pipeline.send(self.training_topic, None, encode_batch(chunk))

    def _dimension_part(self, kind: str, id_: str | None) -> bytes | None:
        """The encoded album or artist part of dimension ``id_``; None while it is unknown."""
        if not id_:
            return None
        part = self._dimension_parts[kind].get(id_)
        if part is None:
            record = self.dimensions.get(kind, id_)
            if record is None:
                return None
            part = self._encode_part(kind, record)
        return part

    def _encode_part(self, kind: str, record: Record) -> bytes:
        fields = ALBUM_FIELDS if kind == "album" else ARTIST_FIELDS
        part = self._parts.encode(kind, {out: record.get(src) for out, src in fields.items()})
        cache = self._dimension_parts[kind]
        if len(cache) >= max(1, self.pipeline.settings.dimension_cache):
            cache.clear()
        cache[record[f"{kind}_id"]] = part
        return part

    def _status(self, missing: list[str]) -> bytes:
        slot = tuple(missing)
        part = self._status_cache.get(slot)
        if part is None:
            part = self._status_cache[slot] = self._parts.encode(
                "status", {"complete": not missing, "missing": missing}
            )
        return part

    def _remember(self, track: Record) -> None:
        track_id = track["track_id"]
        if album_id := track.get("album_id"):
            self.index["album"][album_id].add(track_id)
        if artist_id := track.get("artist_id"):
            self.index["artist"][artist_id].add(track_id)

    async def after_broadcast(self, changes: dict[str, list[str]]) -> None:
        """After each batch the broadcast reader applied: re-emit the tracks of changed
        artists and albums (``DimensionStore.take_changes``), then label what waits."""
        for kind, ids in changes.items():
            if ids:
                await self.on_dimensions(kind, ids)
        await self.label()

    async def on_dimensions(self, kind: str, ids: list[str]) -> None:
        """New or changed artists/albums: retry the tracks of this worker that use them.

        Their parts are encoded first, once per version (and before any await, so no
        join sees an outdated part), rather than by the first track that needs them.
        """
        for id_ in ids:
            if (record := self.dimensions.get(kind, id_)) is not None:
                self._encode_part(kind, record)
        sent = 0
        index = self.index[kind]
        for id_ in ids:
            for track_id in index.get(id_, ()):
                await self.pipeline.send(self.retry_topic, track_id.encode(), Retry.DIMENSION)
                sent += 1
        if sent:
            self._stats["dimension_retries"] += sent
            await self.pipeline.commit_point()

    async def label(self) -> None:
        """Once a model is known: join the tracks waiting for it, and label those emitted
        without it after their maximum wait (each re-emitted once, with its cluster)."""
        if self.models.model is None or not self.unlabelled:
            return
        waiting, self.unlabelled = self.unlabelled, {}
        for partition, keys in waiting.items():
            if keys:
                self.labelling.setdefault(partition, set()).update(keys)
                await self.pipeline.send(self.retry_topic, _LABEL_KEY, Retry.LABEL, partition)
                self._stats["label_retries"] += 1
        await self.pipeline.commit_point()

    async def _label(self, partition: int, keys: list[bytes]) -> None:
        """Join the tracks of ``keys`` waiting for the first model; label those emitted
        before it, in bulk: the emitted record with its (null) cluster parts replaced,
        if it still holds the stored features."""
        waiting = [k for k in keys if k.decode() in self.waiting]
        for key in waiting:
            await self.rejoin(partition, key.decode())
        keys = [k for k in keys if k not in waiting]
        if not keys:
            return
        todo = [
            (key, current, features)
            for key, current, features in zip(
                keys,
                self.enriched.get_many(partition, keys),
                self.features.get_many(partition, keys),
                strict=True,
            )
            if current is not None
            and features is not None
            and current.endswith(self._no_cluster)
            and features[VECTOR.size :] in current
        ]
        parts = self._clusters([features for _, _, features in todo])
        with self.enriched.batch(partition):
            for (key, current, _), part in zip(todo, parts, strict=True):
                if part is not None:
                    body = current[: -len(self._no_cluster)] + part
                    await self.enriched.put(partition, key, body)
                    self._stats["labelled_later"] += 1

    async def expire(self) -> None:
        """Send an expiry retry for every track waiting longer than join_max_wait."""
        deadline = _now_ms() - self.max_wait_ms
        overdue = [t for t, since in self.waiting.items() if since <= deadline]
        for track_id in overdue:
            self.waiting[track_id] = 1 << 62  # asked once; rejoin decides
            await self.pipeline.send(self.retry_topic, track_id.encode(), Retry.EXPIRE)
        if overdue:
            await self.pipeline.commit_point()

    async def sweep(self, partitions: set[int]) -> None:
        """After recovery: rebuild the index and retry whatever the dimensions have moved past."""
        for tracks in self.index.values():
            tracks.clear()
        self.waiting.clear()
        self.unlabelled.clear()
        self.labelling.clear()
        retries = []
        for key, value in self.pending.items(partitions):
            track = self._track.decode(value[_SINCE.size :])
            self._remember(track)
            self.waiting[track["track_id"]] = _SINCE.unpack_from(value)[0]
            retries.append(key)
        for partition in partitions:
            for key, value in self.enriched.items([partition]):
                record = self._enriched.decode(value)
                self._remember(record)
                if self._outdated(record):
                    retries.append(key)
                elif record["model_version"] is None and record["features_updated_at"] is not None:
                    self.unlabelled.setdefault(partition, set()).add(key)
        for key in retries:
            await self.pipeline.send(self.retry_topic, key, Retry.DIMENSION)
        await self.pipeline.commit_point()
        log.info(
            "join state of partitions %s: %d waiting, %d retried",
            sorted(partitions),
            len(self.waiting),
            len(retries),
        )

    def _outdated(self, record: Record) -> bool:
        for kind, field in (("album", "album_updated_at"), ("artist", "artist_updated_at")):
            ref = record.get(f"{kind}_id")
            if ref:
                known = self.dimensions.get(kind, ref)
                if (known["updated_at"] if known else None) != record[field]:
                    return True
        return False


def _now_ms() -> int:
    return int(time.time() * 1000)
