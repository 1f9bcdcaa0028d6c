"""What a worker has done, for /pipeline/stats and /metrics."""

from __future__ import annotations

import logging
import time
from collections import Counter, deque

log = logging.getLogger(__name__)


class Stats:
    """Counters, plus rates over the last ``rate_window`` seconds from one-second samples."""

    def __init__(self, rate_window: float = 10.0) -> None:
        self.started = time.time()
        self.messages_in: Counter[str] = Counter()
        self.records_in: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.events: Counter[str] = Counter()  # named happenings: joins emitted, late plays...
        self.positions: dict[tuple[str, int], int] = {}  # next offset to process
        self.first_at: dict[str, float] = {}  # wall clock of the first and last message per topic
        self.last_at: dict[str, float] = {}
        #: the last table recovery: when it began, the changelog records it had to
        #: read, and its seconds
        self.recovery: dict[str, float] = {}
        self._samples: deque[tuple[float, Counter[str], Counter[str]]] = deque()
        self._rate_window = rate_window

    def consumed(self, topic: str, partition: int, offset: int, records: int = 1) -> None:
        self.messages_in[topic] += 1
        self.records_in[topic] += records
        expected = self.positions.get((topic, partition))
        if expected is not None and offset > expected:
            # Offsets this worker never saw. Normal on compacted or transactional
            # topics; on this pipeline's topics it means Faust's consumer dropped
            # messages (seen on the embedded broker, see docs/stream.md), so it is
            # counted and logged, never silent.
            self.events["offsets_skipped"] += offset - expected
            log.warning(
                "%s[%d]: offsets %d..%d were not delivered", topic, partition, expected, offset - 1
            )
        self.positions[(topic, partition)] = offset + 1
        now = time.time()
        self.first_at.setdefault(topic, now)
        self.last_at[topic] = now

    def sample(self, messages_out: Counter[str]) -> None:
        now = time.monotonic()
        self._samples.append((now, Counter(self.messages_in), Counter(messages_out)))
        while self._samples and now - self._samples[0][0] > self._rate_window:
            self._samples.popleft()

    def rates(self) -> tuple[dict[str, float], dict[str, float]]:
        """Messages per second in and out, per topic, over the sampled window."""
        if len(self._samples) < 2:
            return {}, {}
        (t0, in0, out0), (t1, in1, out1) = self._samples[0], self._samples[-1]
        span = t1 - t0
        return (
            {k: (in1[k] - in0[k]) / span for k in in1},
            {k: (out1[k] - out0[k]) / span for k in out1},
        )

    @property
    def uptime(self) -> float:
        return time.time() - self.started
