"""The plays agent, and each user's recent plays: the table recommendations start from.

``spotify.plays`` is keyed by user, so the plays agent that repartitions plays
by track (for the popularity windows) also keeps, in the ``user-plays`` table,
each user's last
``recent_plays`` distinct tracks (a replay moves a track to the end and keeps
its latest skip flag). The value is JSON ``[[track_id, skipped], ...]``, oldest
first: small, and readable in the changelog.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from spotify_stream.agents import popularity
from spotify_stream.agents.pipeline import Message, Pipeline
from spotify_stream.faust_ext.partitioned import PartitionedTable
from spotify_stream.ml.recommend import Played

#: What the plays agent reads of a play (as written: ``played_at`` in ms).
_FIELDS = ("user_id", "track_id", "played_at", "skipped")


class PlaysAgent:
    """Each play on to the popularity windows (repartitioned by track, with its
    origin) and into its user's recent plays, a batch of a partition at a time."""

    def __init__(self, pipeline: Pipeline, recent: RecentPlays) -> None:
        self.pipeline = pipeline
        self.recent = recent

    async def handle(self, messages: list[Message]) -> None:
        by_partition: dict[int, list[Message]] = {}
        for message in messages:
            by_partition.setdefault(message.partition, []).append(message)
        for partition, run in by_partition.items():
            read = [
                (message.offset, [play for play, _ in plays])
                for message, plays in self.pipeline.encoded_records_by_message(
                    run, "Play", "user_id", _FIELDS
                )
            ]
            await popularity.repartition_plays(self.pipeline, partition, read)
            with self.recent.table.batch(partition):
                await self.recent.remember(partition, (p for _, plays in read for p in plays))


class RecentPlays:
    def __init__(self, table: PartitionedTable, keep: int) -> None:
        self.table = table
        self.keep = keep

    async def remember(self, partition: int, plays: Iterable[dict[str, Any]]) -> None:
        by_user: dict[str, list[dict[str, Any]]] = {}
        for play in plays:
            by_user.setdefault(play["user_id"], []).append(play)
        keys = [user_id.encode() for user_id in by_user]
        stored = self.table.get_many(partition, keys)
        for key, new, value in zip(keys, by_user.values(), stored, strict=True):
            recent = dict(json.loads(value or b"[]"))
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
