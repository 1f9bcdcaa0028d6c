"""What a sink holds of one (dataset, Kafka partition) until it writes it to the lake.

A flush is due when the buffer reaches its row or byte limit, or when its
first record has waited a window (wall clock, so an idle partition still
lands). Wall-clock cuts are not reproducible, so a restarted sink does not
recompute them: it is given the ranges of the flushes that began after its
committed offset (``objects.flushes_after``) and cuts exactly there again,
rewriting the same objects with the same rows. Only then do its own limits
apply.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from spotify_stream.sink.objects import ObjectName, hour_of


@dataclass(frozen=True)
class Limits:
    window: float  # seconds the first record of a buffer may wait
    max_rows: int
    max_bytes: int


@dataclass
class Flush:
    """The objects of one flush: every record of the offset range ``first``..``last``."""

    dataset: str
    partition: int
    first: int
    last: int
    by_hour: dict[dt.datetime, list[dict[str, Any]]]

    def objects(self) -> list[tuple[ObjectName, list[dict[str, Any]]]]:
        return [
            (ObjectName(self.dataset, self.partition, self.first, self.last, hour), rows)
            for hour, rows in sorted(self.by_hour.items())
        ]


@dataclass
class PartitionBuffer:
    dataset: str
    partition: int
    limits: Limits
    replay: deque[tuple[int, int]] = field(default_factory=deque)
    _by_hour: defaultdict[dt.datetime, list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    _first: int | None = None
    _last: int = -1
    _rows: int = 0
    _bytes: int = 0
    _opened_at: float = 0.0

    @classmethod
    def recovering(
        cls, dataset: str, partition: int, limits: Limits, ranges: Iterable[tuple[int, int]]
    ) -> PartitionBuffer:
        """A buffer that first cuts at the given (first, last) ranges, in order."""
        return cls(dataset, partition, limits, deque(sorted(ranges)))

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def first(self) -> int | None:
        """The offset of the oldest record held; None when empty."""
        return self._first

    def cut_before(self, offset: int) -> bool:
        """Whether the buffer must be flushed before the record at ``offset`` joins it
        (it would cross the end of a replayed range)."""
        return self._first is not None and bool(self.replay) and offset > self.replay[0][1]

    def add(
        self, offset: int, record: dict[str, Any], event_ms: int, size: int, now: float
    ) -> None:
        if self._first is None:
            self._first, self._opened_at = offset, now
        self._last = offset
        self._by_hour[hour_of(event_ms)].append(record)
        self._rows += 1
        self._bytes += size

    def due(self, now: float) -> bool:
        if self._first is None:
            return False
        if self.replay:  # replaying a flush that began before a crash: its range, nothing else
            return self._last >= self.replay[0][1]
        limits = self.limits
        return (
            self._rows >= limits.max_rows
            or self._bytes >= limits.max_bytes
            or now - self._opened_at >= limits.window
        )

    def take(self) -> Flush:
        """Empty the buffer into a flush (the caller writes it, then acknowledges)."""
        assert self._first is not None, "nothing to flush"
        first, last = self._first, self._last
        if self.replay:  # ``cut_before`` kept the buffer inside the replayed range
            first, last = self.replay.popleft()  # so: the same name as before the crash
        flush = Flush(self.dataset, self.partition, first, last, dict(self._by_hour))
        self._by_hour = defaultdict(list)
        self._first, self._last, self._rows, self._bytes = None, -1, 0, 0
        return flush
