"""What a sink holds of one (dataset, Kafka partition) until it writes it to the lake.

A flush is due when the buffer reaches its row or byte limit, or when its
first record has waited a window (wall clock, so an idle partition still
lands). Wall-clock cuts are not reproducible, so a restarted sink does not
recompute them: it is given the ranges of the flushes that began after its
committed offset (``objects.flushes_after``) and cuts exactly there again,
rewriting the same objects with the same rows. Only then do its own limits
apply. Records are held encoded, as they came: decoding is the writer's, off
the event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    window: float  # seconds the first record of a buffer may wait
    max_rows: int
    max_bytes: int


@dataclass
class Flush:
    """Every record of the offset range ``first``..``last``, encoded as it came, with
    the Kafka timestamp of its message (ms; None when the message had none)."""

    dataset: str
    partition: int
    first: int
    last: int
    items: list[bytes]
    bytes: int
    timestamps: list[int | None]
    reason: str = "window"  # why it was cut: replay, rows, bytes, window or stop


@dataclass
class PartitionBuffer:
    dataset: str
    partition: int
    limits: Limits
    replay: deque[tuple[int, int]] = field(default_factory=deque)
    #: the lake holds every record before this offset (Iceberg: the table's offset)
    landed: int = 0
    _items: list[bytes] = field(default_factory=list)
    _timestamps: list[int | None] = field(default_factory=list)
    _first: int | None = None
    _last: int = -1
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
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def first(self) -> int | None:
        """The offset of the oldest record held; None when empty."""
        return self._first

    def cut_before(self, offset: int) -> bool:
        """Whether the buffer must be flushed before the record at ``offset`` joins it
        (it would cross the end of a replayed range)."""
        return self._first is not None and bool(self.replay) and offset > self.replay[0][1]

    def add(self, offset: int, item: bytes, now: float, timestamp: int | None = None) -> None:
        """Hold ``item``, one single-object encoded record of the message at ``offset``
        (of Kafka timestamp ``timestamp``, in ms)."""
        if self._first is None:
            self._first, self._opened_at = offset, now
        self._last = offset
        self._items.append(item)
        self._timestamps.append(timestamp)
        self._bytes += len(item)

    @property
    def window_ends(self) -> float | None:
        """When the window of the oldest record held closes; None when empty or
        replaying (a replayed flush ends at its offsets, not in time)."""
        if self._first is None or self.replay:
            return None
        return self._opened_at + self.limits.window

    def due(self, now: float) -> str | None:
        """Why the buffer is to be flushed now (``replay``, ``rows``, ``bytes`` or
        ``window``); None when it is not."""
        if self._first is None:
            return None
        if self.replay:  # replaying a flush that began before a crash: its range, nothing else
            return "replay" if self._last >= self.replay[0][1] else None
        limits = self.limits
        if len(self._items) >= limits.max_rows:
            return "rows"
        if self._bytes >= limits.max_bytes:
            return "bytes"
        return "window" if now - self._opened_at >= limits.window else None

    def take(self, reason: str) -> Flush:
        """Empty the buffer into a flush cut for ``reason`` (the caller writes it, then
        acknowledges)."""
        assert self._first is not None, "nothing to flush"
        first, last = self._first, self._last
        if self.replay:  # ``cut_before`` kept the buffer inside the replayed range
            first, last = self.replay.popleft()  # so: the same name as before the crash
        flush = Flush(
            self.dataset,
            self.partition,
            first,
            last,
            self._items,
            self._bytes,
            self._timestamps,
            reason,
        )
        self._items, self._timestamps = [], []
        self._first, self._last, self._bytes = None, -1, 0
        return flush
