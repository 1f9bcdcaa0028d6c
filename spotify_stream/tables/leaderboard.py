"""The latest closed popularity window per (entity type, window), for /popularity/top.

Fed by the broadcast reader from ``spotify.popularity``, so every worker
answers for all keys, whichever worker closed their windows.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from spotify_stream.models.codec import DecodeError, millis, records_in


class Leaderboard:
    def __init__(self) -> None:
        # (entity_type, window) -> (window_end, {entity_id: record})
        self._latest: dict[tuple[str, str], tuple[int, dict[str, dict[str, Any]]]] = {}
        self.windows: defaultdict[str, set[str]] = defaultdict(set)

    def apply_message(self, value: bytes | None) -> None:
        try:
            records = records_in(value or b"")
        except DecodeError:
            return  # not ours to report: the popularity topic is written by the workers
        for name, record in records:
            if name == "Popularity":
                self.add(record)

    def add(self, record: dict[str, Any]) -> None:
        slot = (record["entity_type"], record["window"])
        end = millis(record["window_end"])
        latest_end, entries = self._latest.get(slot, (None, {}))
        if latest_end is None or end > latest_end:
            latest_end, entries = end, {}
            self._latest[slot] = (latest_end, entries)
        if end == latest_end:
            entries[record["entity_id"]] = record
        self.windows[record["entity_type"]].add(record["window"])

    def top(self, entity_type: str, window: str, n: int) -> list[dict[str, Any]]:
        _, entries = self._latest.get((entity_type, window), (None, {}))
        ranked = sorted(entries.values(), key=lambda r: (-r["plays"], r["entity_id"]))
        return ranked[:n]
