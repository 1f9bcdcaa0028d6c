"""Window definitions and the per-key aggregates that fill them.

Both windows are built from panes: aggregates over ``pane_ms`` (the greatest
common divisor of every size and step, 1 h by default), one per key. A
tumbling 1 h window is one pane; a hopping 24 h window advancing 1 h merges 24
of them, so a play updates one pane instead of 24 windows. A window
``[start, end)`` closes when the watermark (the latest play time seen, minus
the grace period) passes ``end``; it is then emitted once per key.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from spotify_stream.errors import UserError
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

    def ends_between(self, after_ms: int, upto_ms: int) -> list[int]:
        """Ends of the windows with ``after_ms < end <= upto_ms`` (windows start at multiples of the step)."""
        first = math.floor((after_ms - self.size_ms) / self.step_ms) + 1
        ends = []
        k = first
        while (end := k * self.step_ms + self.size_ms) <= upto_ms:
            if end > after_ms:
                ends.append(end)
            k += 1
        return ends


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
        raise UserError(
            "SPOTIFY_STREAM_TUMBLING_WINDOW and _HOPPING_WINDOW must differ in size "
            f"(both are {specs[0].name}); windows are named by their size"
        )
    return specs


def pane_size(specs: tuple[WindowSpec, ...]) -> int:
    return math.gcd(*(n for spec in specs for n in (spec.size_ms, spec.step_ms)))


@dataclass
class Aggregate:
    plays: int = 0
    skips: int = 0
    popularity_sum: float = 0.0
    popularity_count: int = 0
    listeners: list[int] = field(default_factory=list)  # KMV sketch

    def add(self, listener: int, skipped: bool, popularity: float | None) -> None:
        self.plays += 1
        self.skips += skipped
        if popularity is not None:
            self.popularity_sum += popularity
            self.popularity_count += 1
        self.listeners = sketch.merge(self.listeners, [listener])

    def merge(self, other: Aggregate) -> None:
        self.plays += other.plays
        self.skips += other.skips
        self.popularity_sum += other.popularity_sum
        self.popularity_count += other.popularity_count
        self.listeners = sketch.merge(self.listeners, other.listeners)

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
