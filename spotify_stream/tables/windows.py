"""Window definitions and the per-key aggregates that fill them.

Both windows are built from panes: aggregates over ``pane_ms`` (the greatest
common divisor of every size and step, 1 h by default), one per key. A
tumbling 1 h window is one pane; a hopping 24 h window advancing 1 h merges 24
of them, so a play updates one pane instead of 24 windows.

Event time is kept per partition (``WindowClock``), as Kafka Streams keeps
stream time: a window ``[start, end)`` closes when the partition's watermark
(the newest event time it accepted, minus the grace period) reaches ``end``,
and is then emitted once per key. A record is late when it is older than the
end of the last closed window: every window that could hold it is closed.
The decision depends only on the records before it in the partition, never on
how they were batched, so a replay after a crash decides the same.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from spotify_stream.errors import UsageError
from spotify_stream.settings import Settings
from spotify_stream.tables import sketch


@dataclass(frozen=True)
class WindowSpec:
    size_ms: int
    step_ms: int

    @property
    def name(self) -> str:
        """Its size, e.g. ``1h`` or ``24h``: the ``window`` of popularity records and queries."""
        return _duration(self.size_ms)

    def last_end(self, upto_ms: int) -> int:
        """End of the last window with ``end <= upto_ms``."""
        return (upto_ms - self.size_ms) // self.step_ms * self.step_ms + self.size_ms

    def ends_holding(self, pane: int, pane_ms: int, after_ms: int, upto_ms: int) -> range:
        """Ends of the windows holding the pane ``[pane, pane + pane_ms)``, with
        ``after_ms < end <= upto_ms``."""
        low = max(pane + pane_ms, after_ms + 1)
        high = min(pane + self.size_ms, upto_ms)
        first = -((self.size_ms - low) // self.step_ms) * self.step_ms + self.size_ms
        return range(first, high + 1, self.step_ms)


def _duration(ms: int) -> str:
    for unit, length in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % length == 0:
            return f"{ms // length}{unit}"
    return f"{ms}ms"


def window_specs(settings: Settings) -> tuple[WindowSpec, ...]:
    def ms(seconds: float) -> int:
        return round(seconds * 1000)

    specs = (
        WindowSpec(ms(settings.tumbling_window), ms(settings.tumbling_window)),
        WindowSpec(ms(settings.hopping_window), ms(settings.hopping_step)),
    )
    if specs[0].name == specs[1].name:
        raise UsageError(
            "SPOTIFY_STREAM_TUMBLING_WINDOW and _HOPPING_WINDOW must differ in size "
            f"(both are {specs[0].name}); windows are named by their size"
        )
    return specs


def pane_size(specs: tuple[WindowSpec, ...]) -> int:
    return math.gcd(*(n for spec in specs for n in (spec.size_ms, spec.step_ms)))


@dataclass
class WindowClock:
    """Event time of one partition: which records are late, which windows are due.

    ``latest``: the newest event time accepted; ``emitted``: every window
    ending at or before it has been emitted; ``next_offset``: the first input
    offset not yet applied (a replay skips what the state already holds);
    ``seen``: per origin of the records (a path through the repartitions), the
    highest sequence number applied: records of one origin arrive in order, so
    one at or below it is a copy an upstream replay sent again.
    """

    specs: tuple[WindowSpec, ...]
    grace_ms: int
    latest: int | None = None
    emitted: int | None = None
    next_offset: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    #: ``closed`` as of ``latest``: (latest, closed), asked once per record
    _closed: tuple[int | None, int | None] = field(default=(None, None), compare=False, repr=False)

    def first_time(self, origin: str, seq: int) -> bool:
        """Whether the record ``seq`` of ``origin`` is new (a negative ``seq``: unknown,
        always new); if so, it is marked seen."""
        if seq < 0:
            return True
        if seq <= self.seen.get(origin, -1):
            return False
        self.seen[origin] = seq
        return True

    @property
    def closed(self) -> int | None:
        """End of the last closed window; None before the first record."""
        if self.latest is None:
            return None
        known, closed = self._closed
        if known != self.latest:
            watermark = self.latest - self.grace_ms
            closed = max(spec.last_end(watermark) for spec in self.specs)
            self._closed = (self.latest, closed)
        return closed

    def accepts(self, event_ms: int) -> bool:
        """Whether a record of ``event_ms`` may still count (it is not late); if so,
        it moves the stream time."""
        closed = self.closed
        if closed is not None and event_ms < closed:
            return False
        if self.latest is None or event_ms > self.latest:
            self.latest = event_ms
        return True

    def due(self, panes: Iterable[int], pane_ms: int) -> list[tuple[WindowSpec, int]]:
        """(spec, end) of every window holding one of ``panes`` that closed since the
        last call, in order of end; marks them emitted."""
        closed = self.closed
        if closed is None or (self.emitted is not None and closed <= self.emitted):
            return []
        after = self.emitted if self.emitted is not None else -(1 << 62)
        windows = {
            (end, spec.size_ms, spec)
            for spec in self.specs
            for pane in panes
            for end in spec.ends_holding(pane, pane_ms, after, closed)
        }
        self.emitted = closed
        return [(spec, end) for end, _, spec in sorted(windows, key=lambda w: w[:2])]

    def dumps(self) -> bytes:
        return json.dumps([self.latest, self.emitted, self.next_offset, self.seen]).encode()

    def load(self, raw: bytes) -> None:
        self.latest, self.emitted, self.next_offset, self.seen = json.loads(raw)


@dataclass
class Aggregate:
    plays: int = 0
    skips: int = 0
    popularity_sum: float = 0.0
    popularity_count: int = 0
    listeners: list[int] = field(default_factory=list)  # KMV sketch

    @classmethod
    def of(cls, plays: Sequence[tuple[int, bool, float | None]]) -> Aggregate:
        """The aggregate of (listener hash, skipped, popularity) plays."""
        rated = [popularity for _, _, popularity in plays if popularity is not None]
        return cls(
            len(plays),
            sum(skipped for _, skipped, _ in plays),
            float(sum(rated)),
            len(rated),
            sketch.merge([listener for listener, _, _ in plays]),
        )

    @classmethod
    def combined(cls, aggregates: Iterable[Aggregate]) -> Aggregate:
        """One aggregate of many (panes into a window, new plays into a pane)."""
        parts = list(aggregates)
        return cls(
            sum(a.plays for a in parts),
            sum(a.skips for a in parts),
            sum(a.popularity_sum for a in parts),
            sum(a.popularity_count for a in parts),
            sketch.merge(*(a.listeners for a in parts)),
        )

    def summary(self) -> dict[str, float | int | None]:
        return {
            "plays": self.plays,
            "unique_listeners": sketch.estimate(self.listeners),
            "skip_rate": self.skips / self.plays if self.plays else 0.0,
            "mean_popularity": self.popularity_sum / self.popularity_count
            if self.popularity_count
            else None,
        }

    def dumps(self) -> bytes:
        return json.dumps(
            [self.plays, self.skips, self.popularity_sum, self.popularity_count, self.listeners]
        ).encode()

    @classmethod
    def loads(cls, raw: bytes) -> Aggregate:
        plays, skips, pop_sum, pop_count, listeners = json.loads(raw)
        return cls(plays, skips, pop_sum, pop_count, listeners)
