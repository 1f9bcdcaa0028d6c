"""What a record must be to be processed: one set of rules for the agents, which
dead-letter the records that break them, and for the lake sink, which lands only
the records that keep them (the agent owning the partition letters each once).

Valid: of the topic's record type, with an id, in the partition its id hashes
to (co-partitioned joins depend on it), and, where the topic has an event time,
not ahead of the message's Kafka timestamp by more than ``max_clock_skew`` (a
play dated ahead would move the popularity windows' clocks past every open
window). The message timestamp decides, not the wall clock, so a replay, the
agent and the sink all decide alike; a message without one is not checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spotify_stream import topics
from spotify_stream.kafka import partition_for
from spotify_stream.models.codec import millis
from spotify_stream.models.deadletters import Reason

Problem = tuple[Reason, str]


def rules_for(
    topic: str, record: str, key_field: str, partitions: int | None, max_clock_skew: float
) -> Rules:
    """The rules of records of type ``record`` keyed by ``key_field`` on ``topic`` (of ``partitions``
    partitions; None: not checked), with the topic's event time if it has one."""
    public = topics.BY_NAME.get(topic)
    event_time = public.event_time if public and public.record == record else None
    return Rules(record, key_field, partitions, event_time, round(max_clock_skew * 1000))


@dataclass(frozen=True)
class Rules:
    record: str  # the record type of the topic
    key_field: str
    partitions: int | None = None  # the topic's partition count; None: not checked
    event_time: str | None = None
    max_ahead_ms: int = 0

    def broken(
        self, name: str, record: Mapping[str, Any], partition: int, timestamp_ms: int | None
    ) -> Problem | None:
        """What is wrong with ``record`` (of record type ``name``), read from ``partition``
        in a message of ``timestamp_ms``; None when it is valid."""
        if name != self.record:
            return Reason.WRONG_RECORD_TYPE, f"a {name} on a topic of {self.record}"
        problem = self._key(record.get(self.key_field), partition)
        if problem is None and self.event_time is not None:
            problem = self._time(record.get(self.event_time), timestamp_ms)
        return problem

    def broken_rows(
        self,
        keys: Sequence[str | None],
        times: Sequence[Any] | None,
        partition: int,
        timestamps: Sequence[int | None],
    ) -> dict[int, Problem]:
        """``broken`` for columns of records of this type: row -> what is wrong."""
        problems = {}
        for row, key in enumerate(keys):
            problem = self._key(key, partition)
            if problem is None and times is not None:
                problem = self._time(times[row], timestamps[row])
            if problem is not None:
                problems[row] = problem
        return problems

    def _key(self, key: str | None, partition: int) -> Problem | None:
        if not key:
            return Reason.MISSING_ID, f"{self.key_field} is empty"
        if self.partitions:
            home = partition_for(key.encode(), self.partitions)
            if home != partition:
                return (
                    Reason.MISROUTED,
                    f"{self.key_field}={key} belongs in partition {home}, not {partition}",
                )
        return None

    def _time(self, value: Any, timestamp_ms: int | None) -> Problem | None:
        if value is None or timestamp_ms is None or timestamp_ms < 0:
            return None
        at = millis(value)
        if at <= timestamp_ms + self.max_ahead_ms:
            return None
        return (
            Reason.FUTURE_EVENT_TIME,
            f"{self.event_time} {_iso(at)} is {(at - timestamp_ms) / 1000:.0f} s after the "
            f"message's timestamp {_iso(timestamp_ms)} (max_clock_skew "
            f"{self.max_ahead_ms / 1000:g} s)",
        )


def _iso(ms: int) -> str:
    try:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return f"{ms} ms"
