"""Each user's recent plays: the table the recommendations start from.

``spotify.plays`` is keyed by user, so the plays agent that repartitions plays
by track also keeps, in the ``user-plays`` table, each user's last
``recent_plays`` distinct tracks (a replay moves a track to the end and keeps
its latest skip flag). The value is JSON ``[[track_id, skipped], ...]``, oldest
first: small, and readable in the changelog.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from spotify_stream.ml.recommend import Played
from spotify_stream.tables.partitioned import PartitionedTable


class RecentPlays:
    def __init__(self, table: PartitionedTable, keep: int) -> None:
        self.table = table
        self.keep = keep

    async def remember(self, partition: int, plays: Iterable[dict[str, Any]]) -> None:
        by_user: dict[str, list[dict[str, Any]]] = {}
        for play in plays:
            by_user.setdefault(play["user_id"], []).append(play)
        for user_id, new in by_user.items():
            key = user_id.encode()
            recent = {p.track_id: p.skipped for p in _decode(self.table.get(partition, key))}
            for play in sorted(new, key=lambda p: p["played_at"]):
                recent.pop(play["track_id"], None)  # to the end: dicts keep insertion order
                recent[play["track_id"]] = play["skipped"]
            kept = list(recent.items())[-self.keep :]
            await self.table.put(partition, key, json.dumps(kept).encode())

    def played(self, partition: int, user_id: str) -> list[Played] | None:
        """The user's recent plays, oldest first; None for a user with none."""
        value = self.table.get(partition, user_id.encode())
        return None if value is None else _decode(value)


def _decode(value: bytes | None) -> list[Played]:
    return [Played(track_id, skipped) for track_id, skipped in json.loads(value or b"[]")]
