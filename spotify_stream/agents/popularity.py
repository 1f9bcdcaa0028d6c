"""Rolling popularity: plays -> (entity, play) contributions -> windowed panes -> closed windows.

Plays are keyed by user, the enriched tracks by track, and a window must see
every play of its key, so this takes two repartitions:

1. ``plays``: forward each play keyed by track_id (``plays-by-track``), so it
   lands in the partition holding its enriched track;
2. ``attribute``: look the track up and send one contribution per entity
   (track, primary artist, album, each genre) keyed ``entity_type:entity_id``;
3. ``windows``: add contributions to hourly panes (``Aggregate``), and emit
   a ``Popularity`` record per key when a window closes.

A play whose track is not (yet) enriched counts for the track alone.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from faust.types import EventT

from spotify_stream import topics
from spotify_stream.agents.pipeline import Pipeline
from spotify_stream.ingest.reasons import Reason
from spotify_stream.models import codec_for
from spotify_stream.models.codec import millis
from spotify_stream.tables import sketch
from spotify_stream.tables.partitioned import PartitionedTable
from spotify_stream.tables.windows import Aggregate, WindowSpec, pane_size

log = logging.getLogger(__name__)

_CLOSED_THROUGH = b"\x00closed_through"  # per-partition marker in the panes table


async def repartition_plays(pipeline: Pipeline, plays: Iterable[dict[str, Any]]) -> None:
    """Step 1: plays keyed by user -> plays keyed by track."""
    codec = codec_for("Play")
    target = pipeline.internal(topics.PLAYS_BY_TRACK)
    for play in plays:
        await pipeline.send(target, play["track_id"].encode(), codec.encode(play))


def contributions(play: dict[str, Any], track: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """(``entity_type:entity_id``, popularity snapshot) for every entity a play counts for."""
    if track is None:
        return [(f"track:{play['track_id']}", None)]
    out = [(f"track:{track['track_id']}", track["popularity"])]
    if track.get("artist_id"):
        out.append((f"artist:{track['artist_id']}", track["artist_popularity"]))
    if track.get("album_id"):
        out.append((f"album:{track['album_id']}", track["album_popularity"]))
    out += [(f"genre:{genre}", track["artist_popularity"]) for genre in track["genres"]]
    return out


async def attribute_plays(
    pipeline: Pipeline, enriched: PartitionedTable, events: Iterable[EventT]
) -> None:
    """Step 2: one contribution per entity of each play, keyed by entity."""
    track_codec = codec_for("EnrichedTrack")
    target = pipeline.internal(topics.CONTRIBUTIONS)
    for event in events:
        partition = event.message.partition
        for play in pipeline.records(event, "Play", "track_id"):
            raw = enriched.get(partition, play["track_id"].encode())
            track = track_codec.decode(raw) if raw else None
            if track is None:
                pipeline.stats.events["plays_of_unknown_tracks"] += 1
            value = [millis(play["played_at"]), play["user_id"], play["skipped"]]
            for key, popularity in contributions(play, track):
                await pipeline.send(target, key.encode(), json.dumps([*value, popularity]).encode())


class PopularityWindows:
    """Step 3: panes per key, closed windows out to ``spotify.popularity``.

    The watermark is the latest play time this worker has seen minus
    ``window_grace``. A contribution older than the last closed window end is
    late: counted (``late_plays``), not added.
    """

    def __init__(
        self, pipeline: Pipeline, panes: PartitionedTable, specs: tuple[WindowSpec, ...]
    ) -> None:
        self.pipeline = pipeline
        self.panes = panes
        self.specs = specs
        self.pane_ms = pane_size(specs)
        self.grace_ms = int(pipeline.settings.window_grace * 1000)
        self.longest_ms = max(spec.size_ms for spec in specs)
        self.topic = pipeline.internal(topics.CONTRIBUTIONS)
        self.by_pane: defaultdict[int, set[tuple[int, str]]] = defaultdict(set)
        self.closed_through: int | None = None
        self.latest = 0
        self.partitions: set[int] = set()
        self._codec = codec_for(topics.POPULARITY.record)

    async def handle(self, events: Iterable[EventT]) -> None:
        stats = self.pipeline.stats
        touched: dict[tuple[int, bytes], Aggregate] = {}
        for event in events:
            message = event.message
            stats.consumed(message.topic, message.partition, message.offset)
            try:
                played_at, user, skipped, popularity = json.loads(message.value)
                entity = message.key.decode()
            except (ValueError, TypeError, AttributeError) as exc:
                self.pipeline.dead_letter(event, Reason.UNDECODABLE, f"bad contribution: {exc}")
                continue
            if self.closed_through is not None and played_at < self.closed_through:
                stats.events["late_plays"] += 1
                continue
            pane = played_at - played_at % self.pane_ms
            slot = (message.partition, f"{entity}|{pane}".encode())
            aggregate = touched.get(slot)
            if aggregate is None:
                raw = self.panes.get(*slot)
                aggregate = touched[slot] = Aggregate.loads(raw) if raw else Aggregate()
            aggregate.add(sketch.listener_hash(user), bool(skipped), popularity)
            self.by_pane[pane].add((message.partition, entity))
            self.latest = max(self.latest, played_at)
        for (partition, key), aggregate in touched.items():
            await self.panes.put(partition, key, aggregate.dumps())
        await self.close_windows()

    async def close_windows(self) -> None:
        watermark = self.latest - self.grace_ms
        if not self.by_pane:
            return
        after = self.closed_through
        if after is None:
            after = min(self.by_pane) - 1  # nothing closed yet: start at the oldest pane
        if watermark <= after:
            return
        for spec in self.specs:
            for end in spec.ends_between(after, watermark):
                await self._emit(spec, end - spec.size_ms, end)
        self.closed_through = watermark
        for partition in self.partitions:
            await self.panes.put(partition, _CLOSED_THROUGH, str(watermark).encode())
        # Panes no window still open can reach.
        for pane in [p for p in self.by_pane if p + self.pane_ms <= watermark - self.longest_ms]:
            for partition, entity in self.by_pane.pop(pane):
                await self.panes.put(partition, f"{entity}|{pane}".encode(), None)

    async def _emit(self, spec: WindowSpec, start: int, end: int) -> None:
        keys: set[tuple[int, str]] = set()
        for pane in range(start, end, self.pane_ms):
            keys |= self.by_pane.get(pane, set())
        for partition, entity in sorted(keys):
            total = Aggregate()
            for pane in range(start, end, self.pane_ms):
                raw = self.panes.get(partition, f"{entity}|{pane}".encode())
                if raw:
                    total.merge(Aggregate.loads(raw))
            entity_type, entity_id = entity.split(":", 1)
            record = {
                "entity_type": entity_type,
                "entity_id": entity_id,
                "window": spec.name,
                "window_start": start,
                "window_end": end,
                **total.summary(),
            }
            await self.pipeline.send(
                topics.POPULARITY.name, entity.encode(), self._codec.encode(record)
            )
            self.pipeline.stats.events["windows_emitted"] += 1

    def recover(self, partitions: set[int]) -> None:
        """Rebuild the pane index and the closed-through mark from the recovered table."""
        self.partitions = partitions
        self.by_pane.clear()
        marks = []
        for partition in partitions:
            for key, value in self.panes.items([partition]):
                if key == _CLOSED_THROUGH:
                    marks.append(int(value))
                    continue
                entity, pane = key.decode().rsplit("|", 1)
                self.by_pane[int(pane)].add((partition, entity))
        self.closed_through = min(marks) if marks else None
        self.latest = max(self.latest, (self.closed_through or 0) + self.grace_ms)
