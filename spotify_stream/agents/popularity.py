"""Rolling popularity: plays -> (entity, play) contributions -> windowed panes -> closed windows.

Plays are keyed by user, the enriched tracks by track, and a window must see
every play of its key, so this takes two repartitions. Each is at-least-once:
after a crash an agent sends again what it had not committed. So every play
carries its origin (the ``spotify.plays`` partition and a sequence number from
its offset) through both, and the windows drop a contribution whose origin
they have seen (``WindowClock.first_time``): a replay counts no play twice.

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
import struct
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from spotify_stream import topics
from spotify_stream.agents.pipeline import Message, Pipeline
from spotify_stream.faust_ext.partitioned import PartitionedTable
from spotify_stream.kafka import partition_for
from spotify_stream.models import codec_for
from spotify_stream.models.codec import millis
from spotify_stream.models.deadletters import Reason
from spotify_stream.tables import sketch
from spotify_stream.tables.windows import Aggregate, WindowClock, WindowSpec, pane_size

log = logging.getLogger(__name__)

_CLOCK = b"\x00clock"  # per partition in the panes table: its WindowClock
#: A play's origin, after its track id in the ``plays-by-track`` key: its partition of
#: ``spotify.plays`` and ``offset << 20 | index`` (its place in a ``Batch``).
_ORIGIN = struct.Struct(">iq")
_SEP = b"\x00"


async def repartition_plays(
    pipeline: Pipeline, partition: int, offset: int, plays: list[dict[str, Any]]
) -> None:
    """Step 1: the plays of one message of ``spotify.plays`` -> plays keyed by track,
    each with its origin in the key (the partition is its track id's)."""
    codec = codec_for("Play")
    target = pipeline.internal(topics.PLAYS_BY_TRACK)
    count = pipeline.sender.partitions[target]
    for index, play in enumerate(plays):
        track_id = play["track_id"].encode()
        key = track_id + _SEP + _ORIGIN.pack(partition, offset << 20 | index)
        await pipeline.send(target, key, codec.encode(play), partition_for(track_id, count))


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
    pipeline: Pipeline, enriched: PartitionedTable, messages: Iterable[Message]
) -> None:
    """Step 2: one contribution per entity of each play, keyed by entity."""
    track_codec = codec_for("EnrichedTrack")
    target = pipeline.internal(topics.CONTRIBUTIONS)
    # a track's entities, once per batch: a batch holds many plays of each popular track
    entities: dict[tuple[int, str], list[tuple[str, Any]] | None] = {}
    for message in messages:
        partition = message.partition
        _, _, origin = (message.key or b"").partition(_SEP)
        source, seq = _ORIGIN.unpack(origin) if len(origin) == _ORIGIN.size else (-1, -1)
        for play in pipeline.records(message, "Play", "track_id"):
            slot = (partition, play["track_id"])
            if slot not in entities:
                raw = enriched.get(partition, play["track_id"].encode())
                entities[slot] = contributions(play, track_codec.decode(raw)) if raw else None
            counted = entities[slot]
            if counted is None:
                pipeline.stats.events["plays_of_unknown_tracks"] += 1
                counted = contributions(play, None)
            value = [millis(play["played_at"]), play["user_id"], play["skipped"]]
            # a play's contributions in order, after it: two may reach one partition
            for j, (key, popularity) in enumerate(counted):
                order = seq << 16 | j if seq >= 0 else -1
                contribution = [*value, popularity, f"{partition}:{source}", order]
                await pipeline.send(target, key.encode(), json.dumps(contribution).encode())


class PopularityWindows:
    """Step 3: panes per key, closed windows out to ``spotify.popularity``.

    Each partition has its own event time (``WindowClock``), stored in the panes
    table beside its panes and written with them: a contribution older than the
    partition's last closed window end is late (``late_contributions``, not
    added), and a replay after a crash skips the offsets the state holds.
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
        self.clocks: dict[int, WindowClock] = {}
        self.by_pane: dict[int, defaultdict[int, set[str]]] = {}  # partition -> pane -> entities
        self._codec = codec_for(topics.POPULARITY.record)

    async def handle(self, messages: Iterable[Message]) -> None:
        stats = self.pipeline.stats
        touched: dict[tuple[int, bytes], Aggregate] = {}
        changed: set[int] = set()
        for message in messages:
            partition = message.partition
            stats.consumed(message.topic, partition, message.offset)
            clock = self._clock(partition)
            if message.offset < clock.next_offset:  # replayed: the state holds it
                continue
            clock.next_offset = message.offset + 1
            changed.add(partition)
            try:
                played_at, user, skipped, popularity, origin, seq = json.loads(message.value)
                entity = message.key.decode()
            except (ValueError, TypeError, AttributeError) as exc:
                self.pipeline.dead_letter(message, Reason.UNDECODABLE, f"bad contribution: {exc}")
                continue
            if not clock.first_time(origin, seq):
                stats.events["replayed_contributions"] += 1
                continue
            if not clock.accepts(played_at):
                stats.events["late_contributions"] += 1
                continue
            pane = played_at - played_at % self.pane_ms
            slot = (partition, f"{entity}|{pane}".encode())
            aggregate = touched.get(slot)
            if aggregate is None:
                raw = self.panes.get(*slot)
                aggregate = touched[slot] = Aggregate.loads(raw) if raw else Aggregate()
            aggregate.add(sketch.listener_hash(user), bool(skipped), popularity)
            self.by_pane[partition][pane].add(entity)
        for (partition, key), aggregate in touched.items():
            await self.panes.put(partition, key, aggregate.dumps())
        for partition in sorted(changed):
            await self.close_windows(partition)

    def _clock(self, partition: int) -> WindowClock:
        """The partition's clock and pane index, read from the table on first use."""
        clock = self.clocks.get(partition)
        if clock is None:
            clock = self.clocks[partition] = WindowClock(self.specs, self.grace_ms)
            index = self.by_pane[partition] = defaultdict(set)
            for key, value in self.panes.items([partition]):
                if key == _CLOCK:
                    clock.load(value)
                elif not key.startswith(b"\x00"):
                    entity, pane = key.decode().rsplit("|", 1)
                    index[int(pane)].add(entity)
        return clock

    async def close_windows(self, partition: int) -> None:
        """Emit the windows of ``partition`` that closed, drop the panes no open window
        reaches, and store the clock with them."""
        clock, index = self.clocks[partition], self.by_pane[partition]
        for spec, end in clock.due(index, self.pane_ms):
            await self._emit(partition, spec, end - spec.size_ms, end)
        if clock.emitted is not None:
            for pane in [p for p in index if p + self.longest_ms <= clock.emitted]:
                for entity in index.pop(pane):
                    await self.panes.put(partition, f"{entity}|{pane}".encode(), None)
        await self.panes.put(partition, _CLOCK, clock.dumps())

    async def _emit(self, partition: int, spec: WindowSpec, start: int, end: int) -> None:
        index = self.by_pane[partition]
        entities: set[str] = set()
        for pane in range(start, end, self.pane_ms):
            entities |= index.get(pane, set())
        for entity in sorted(entities):
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

    def first_close(self, window: str) -> int | None:
        """The event time at which the earliest window named ``window`` that holds a
        pane of this worker closes (its end plus the grace); None without panes."""
        panes = [pane for index in self.by_pane.values() for pane in index]
        spec = next((s for s in self.specs if s.name == window), None)
        if not panes or spec is None:
            return None
        earliest = min(panes)
        ends = spec.ends_holding(earliest, self.pane_ms, -(1 << 62), earliest + spec.size_ms)
        return ends[0] + self.grace_ms

    def recover(self) -> None:
        """Forget what was read of the table (recovered anew): each partition's clock
        and pane index are read again on first use."""
        self.clocks.clear()
        self.by_pane.clear()
