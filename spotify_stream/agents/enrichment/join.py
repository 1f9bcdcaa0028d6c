"""The enrichment join: its state, and the protocol around it (see the package's
docstring): waiting tracks, retries, expiry, re-emission on changed dimensions,
labelling after the first model, recovery."""

from __future__ import annotations

import logging
import struct
import time
from collections import defaultdict
from collections.abc import Iterable
from itertools import groupby
from typing import Any

from spotify_stream import topics
from spotify_stream.agents.clustering import ModelHolder
from spotify_stream.agents.enrichment.assembly import (
    JOIN_FIELDS,
    PARTS,
    Assembler,
    features_part,
    missing_parts,
)
from spotify_stream.agents.enrichment.labels import Labels
from spotify_stream.agents.enrichment.retry import LABEL_KEY, Retry
from spotify_stream.agents.enrichment.training import TrainerFeed
from spotify_stream.agents.pipeline import Message, Pipeline, Record
from spotify_stream.faust_ext.partitioned import PartitionedTable
from spotify_stream.ml.clustering import VECTOR, pack_vector
from spotify_stream.models import codec_for
from spotify_stream.models.codec import body_if_current, millis
from spotify_stream.tables.dimensions import DimensionStore

log = logging.getLogger(__name__)

#: A pending-joins value: the first-seen time (ms), then the encoded Track.
_SINCE = struct.Struct(">q")


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
        self.parts = Assembler(dimensions, pipeline.settings.dimension_cache)
        self.labels = Labels(models, self.parts)
        self.trainer = TrainerFeed(pipeline)
        #: partition -> tracks emitted with features but before the first model, and
        #: those of them whose partition's label message is on its way
        self.unlabelled: dict[int, set[bytes]] = {}
        self.labelling: dict[int, set[bytes]] = {}
        self.max_wait_ms = int(pipeline.settings.join_max_wait * 1000)
        self.retry_topic = pipeline.internal(topics.JOIN_RETRY)  # messages: ``Retry``
        #: kind -> dimension id -> the tracks of this worker that reference it
        self.index: dict[str, defaultdict[str, set[str]]] = {
            "album": defaultdict(set),
            "artist": defaultdict(set),
        }
        self.waiting: dict[str, int] = {}  # track_id -> first seen (ms), for the expiry timer
        self._track = codec_for("Track")
        self._enriched = codec_for("EnrichedTrack")
        self._stats = pipeline.stats.events

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

    async def handle(self, messages: Iterable[Message]) -> None:
        pipeline = self.pipeline
        labels: set[int] = set()  # partitions to label, in bulk
        for (topic, partition), run in groupby(messages, lambda m: (m.topic, m.partition)):
            if topic == topics.TRACKS.name:
                # Tracks keep updated_at in ms: the join only compares it.
                tracks = pipeline.encoded_records_of(list(run), "Track", "track_id", JOIN_FIELDS)
                await self.on_tracks(partition, tracks)
                continue
            for message in run:
                if topic == self.retry_topic:
                    pipeline.stats.consumed(topic, partition, message.offset)
                    retry = Retry(message.value)
                    if retry is Retry.LABEL:
                        labels.add(partition)
                    else:
                        key = message.key.decode()
                        await self.rejoin(partition, key, expire=retry is Retry.EXPIRE)
                else:
                    for features in pipeline.records(message, "AudioFeatures", "track_id"):
                        await self.on_features(partition, features)
        for partition in labels:
            await self._label(partition, list(self.labelling.pop(partition, ())))
        await self.trainer.send()

    async def on_tracks(self, partition: int, tracks: list[tuple[Record, bytes]]) -> None:
        """Join tracks of one partition; their state is read in two bulk lookups."""
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
            clusters = self.labels.assign([f if c is None else None for c, f in states])
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
            stored = self.parts.stored_track(current)["updated_at"]
        else:
            stored = self._track.decode(pending[_SINCE.size :])["updated_at"]
        return millis(stored) > millis(track["updated_at"])

    async def on_features(self, partition: int, features: Record) -> None:
        key = features["track_id"].encode()
        old = self.features.get(partition, key)
        if (
            old is not None
            and self.parts.features_of(old)["features_updated_at"] > features["updated_at"]
        ):
            self._stats["stale_features"] += 1
            return
        value = pack_vector(features) + PARTS.encode("features", features_part(features))
        if value == old:
            return
        await self.features.put(partition, key, value)
        self.trainer.vector(value[: VECTOR.size])
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
            track = self.parts.stored_track(current)
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
        album = self.parts.dimension_part("album", track.get("album_id"))
        artist = self.parts.dimension_part("artist", track.get("artist_id"))
        missing = missing_parts(track, album, artist, features)
        self._remember(track)
        awaits_model = not missing and self.labels.awaits_model(features)
        if current is None and not expire and (missing or awaits_model):
            since = _SINCE.unpack_from(pending)[0] if pending else _now_ms()
            value = _SINCE.pack(since) + (encoded or self._track.encode(track))
            if value != pending:
                await self.pending.put(partition, key, value)
            self.waiting.setdefault(track["track_id"], since)
            if awaits_model:  # ``label`` joins it again once the first model is known
                self.unlabelled.setdefault(partition, set()).add(key)
            return
        if current is not None and missing and set(missing) - set(self.parts.missing_in(current)):
            # What was emitted had this part: our state is behind the output, as after a
            # crash that replays a track before the features it was joined with. The
            # part's own replay retries the track; emitting now would step back.
            self._stats["held_back"] += 1
            return
        # (a track of an older schema came decoded whole: its part is encoded anew)
        track_part = body_if_current("Track", encoded) if encoded else None
        learn = features is not None
        if cluster is None:
            cluster, learn = self.labels.of(current, features)
        body = b"".join(
            (
                self.parts.header,
                track_part or PARTS.encode("track", track),
                album or self.parts.null["album"],
                artist or self.parts.null["artist"],
                features[VECTOR.size :] if features else self.parts.null["features"],
                self.parts.status(missing),
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
                self.trainer.track(body)
            self._stats["emitted" if current is None else "re-emitted"] += 1
            if missing:
                self._stats["emitted_incomplete"] += 1
        if pending is not None:
            await self.pending.put(partition, key, None)
            self.waiting.pop(track["track_id"], None)

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
                self.parts.encode_part(kind, record)
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
                await self.pipeline.send(self.retry_topic, LABEL_KEY, Retry.LABEL, partition)
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
            and current.endswith(self.parts.no_cluster)
            and features[VECTOR.size :] in current
        ]
        parts = self.labels.assign([features for _, _, features in todo])
        with self.enriched.batch(partition):
            for (key, current, _), part in zip(todo, parts, strict=True):
                if part is not None:
                    body = current[: -len(self.parts.no_cluster)] + part
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
