"""Rolling popularity: plays -> (entity, play) contributions -> windowed panes -> closed windows.

Plays are keyed by user, the enriched tracks by track, and a window must see
every play of its key, so this takes two repartitions. Neither sends a message
per play: each agent sends what one batch of a partition holds for a target
partition as one message (JSON rows, in input order; a long run in several),
so a play costs a few rows, not a few messages, on its way through both.

Each repartition is at-least-once: after a crash an agent sends again what it
had not committed, possibly cut into other messages. So every play carries its
origin (its ``spotify.plays`` partition and a sequence number from its offset)
through both, and the windows drop a contribution whose origin they have seen
(``WindowClock.first_time``): a replay counts no play twice.

1. ``plays``: each play's row to ``plays-by-track``, in the partition of its
   track id (the one holding its enriched track):
   ``[source partition, [[seq, track_id, played_at ms, listener hash, skipped], ...]]``;
2. ``attribute``: look each track up and add one row per entity (track,
   primary artist, album, each genre) to ``popularity-contributions``, in the
   partition of the entity's key ``entity_type:entity_id``:
   ``[attribution partition, [[entity, played_at ms, listener hash, skipped,
   popularity, source partition, order], ...]]``;
3. ``windows``: add the rows to hourly panes (``Aggregate``, once per pane and
   entity per batch), and emit a ``Popularity`` record per key when a window closes.

A play whose track is not (yet) enriched counts for the track alone.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
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
#: Rows per message at most (fewer when they would not fit in a producer batch).
_ROWS = 4000
#: The types of the fields of a row of each repartition (see above).
_PLAY = ({int}, {str}, {int}, {int}, {bool})
_CONTRIBUTION = ({str}, {int}, {int}, {bool}, {int, float, type(None)}, {int}, {int})


async def repartition_plays(
    pipeline: Pipeline, source: int, messages: Iterable[tuple[int, list[dict[str, Any]]]]
) -> None:
    """Step 1: the plays of (offset, plays) messages of ``spotify.plays`` partition
    ``source`` -> rows keyed by track, one message per target partition. A play's
    sequence number is ``offset << 20 | index`` (its place in a ``Batch``)."""
    target = pipeline.internal(topics.PLAYS_BY_TRACK)
    count = pipeline.sender.partitions[target]
    rows: defaultdict[int, list[list[Any]]] = defaultdict(list)
    for offset, plays in messages:
        for index, play in enumerate(plays):
            track_id = play["track_id"]
            rows[partition_for(track_id.encode(), count)].append(
                [
                    offset << 20 | index,
                    track_id,
                    millis(play["played_at"]),
                    sketch.listener_hash(play["user_id"]),
                    play["skipped"],
                ]
            )
    for partition, part in rows.items():
        await send_rows(pipeline, target, source, part, partition)


async def send_rows(
    pipeline: Pipeline, topic: str, origin: int, rows: list[list[Any]], partition: int
) -> None:
    """``rows`` as ``[origin, rows]`` messages to ``partition`` of ``topic``, in order,
    each small enough for one producer batch."""
    limit = pipeline.settings.producer_max_batch_bytes // 2
    key = str(origin).encode()
    pending = [rows[i : i + _ROWS] for i in range(0, len(rows), _ROWS)]
    while pending:
        part = pending.pop(0)
        value = json.dumps([origin, part], separators=(",", ":")).encode()
        if len(value) > limit and len(part) > 1:
            half = len(part) // 2
            pending[:0] = [part[:half], part[half:]]
            continue
        await pipeline.send(topic, key, value, partition)


def rows_of(message: Message, shape: Sequence[set[type]]) -> tuple[int, list[list[Any]]]:
    """The origin and rows of a repartition message; ValueError when it is not one
    (``shape``: the types each field of a row may have). Checked a column at a time."""
    try:
        origin, rows = json.loads(message.value)
        columns = list(zip(*rows, strict=True)) if isinstance(rows, list) else None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not [origin, rows]: {exc}") from None
    if not isinstance(origin, int) or columns is None:
        raise ValueError("not [origin, rows]")
    if rows and (
        len(columns) != len(shape)
        or set(map(type, rows)) != {list}
        or not all(set(map(type, c)) <= types for c, types in zip(columns, shape, strict=True))
    ):
        raise ValueError(f"rows are not {len(shape)} fields of the expected types")
    return origin, rows


def contributions(track_id: str, track: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """(``entity_type:entity_id``, popularity snapshot) for every entity a play counts for."""
    if track is None:
        return [(f"track:{track_id}", None)]
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
    """Step 2: each play's rows for the entities it counts for, one message per
    (input partition, target partition)."""
    track_codec = codec_for("EnrichedTrack")
    target = pipeline.internal(topics.CONTRIBUTIONS)
    count = pipeline.sender.partitions[target]
    stats = pipeline.stats
    # a track's entities, once per batch: a batch holds many plays of each popular track
    entities: dict[tuple[int, str], list[tuple[str, Any, int]] | None] = {}
    out: defaultdict[tuple[int, int], list[list[Any]]] = defaultdict(list)
    for message in messages:
        partition = message.partition
        try:
            source, plays = rows_of(message, _PLAY)
        except ValueError as exc:
            stats.consumed(message.topic, partition, message.offset, 0)
            pipeline.dead_letter(message, Reason.UNDECODABLE, f"bad plays-by-track: {exc}")
            continue
        stats.consumed(message.topic, partition, message.offset, len(plays))
        for seq, track_id, played_at, listener, skipped in plays:
            slot = (partition, track_id)
            counted = entities.get(slot, False)
            if counted is False:
                raw = enriched.get(partition, track_id.encode())
                counted = entities[slot] = (
                    [
                        (key, popularity, partition_for(key.encode(), count))
                        for key, popularity in contributions(track_id, track_codec.decode(raw))
                    ]
                    if raw
                    else None
                )
            if counted is None:
                stats.events["plays_of_unknown_tracks"] += 1
                key = f"track:{track_id}"
                counted = [(key, None, partition_for(key.encode(), count))]
            # a play's rows in order, after it: two may reach one partition
            for j, (key, popularity, to) in enumerate(counted):
                out[partition, to].append(
                    [key, played_at, listener, skipped, popularity, source, seq << 16 | j]
                )
    for (partition, to), rows in out.items():
        await send_rows(pipeline, target, partition, rows, to)


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
        pane_ms = self.pane_ms
        # per (partition, entity, pane): its new plays (listener, skipped, popularity)
        counts: dict[tuple[int, str, int], list[tuple[int, bool, Any]]] = {}
        changed: set[int] = set()
        for message in messages:
            partition = message.partition
            clock = self._clock(partition)
            if message.offset < clock.next_offset:  # replayed: the state holds it
                stats.consumed(message.topic, partition, message.offset, 0)
                continue
            clock.next_offset = message.offset + 1
            changed.add(partition)
            try:
                attributed, rows = rows_of(message, _CONTRIBUTION)
            except ValueError as exc:
                stats.consumed(message.topic, partition, message.offset, 0)
                self.pipeline.dead_letter(message, Reason.UNDECODABLE, f"bad contributions: {exc}")
                continue
            stats.consumed(message.topic, partition, message.offset, len(rows))
            origins: dict[int, str] = {}
            for entity, played_at, listener, skipped, popularity, source, order in rows:
                origin = origins.get(source)
                if origin is None:
                    origin = origins[source] = f"{attributed}:{source}"
                if not clock.first_time(origin, order):
                    stats.events["replayed_contributions"] += 1
                    continue
                if not clock.accepts(played_at):
                    stats.events["late_contributions"] += 1
                    continue
                slot = (partition, entity, played_at - played_at % pane_ms)
                plays = counts.get(slot)
                if plays is None:
                    plays = counts[slot] = []
                plays.append((listener, skipped, popularity))
        by_partition: defaultdict[int, list[tuple[str, int, list[Any]]]] = defaultdict(list)
        for (partition, entity, pane), plays in counts.items():
            by_partition[partition].append((entity, pane, plays))
        for partition in sorted(changed):
            with self.panes.batch(partition):
                for entity, pane, plays in by_partition[partition]:
                    key = f"{entity}|{pane}".encode()
                    raw = self.panes.get(partition, key)
                    aggregate = Aggregate.of(plays)
                    if raw:
                        aggregate = Aggregate.combined([Aggregate.loads(raw), aggregate])
                    await self.panes.put(partition, key, aggregate.dumps())
                    self.by_pane[partition][pane].add(entity)
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
        panes: defaultdict[str, list[bytes]] = defaultdict(list)  # entity -> its panes' keys
        for pane in range(start, end, self.pane_ms):
            for entity in index.get(pane, ()):
                panes[entity].append(f"{entity}|{pane}".encode())
        for entity in sorted(panes):
            found = self.panes.get_many(partition, panes[entity])
            total = Aggregate.combined(Aggregate.loads(raw) for raw in found if raw)
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
