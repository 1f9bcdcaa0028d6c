"""Writes a flush to the lake: one Parquet object per hour of event time.

Decoding, the split by hour and Parquet encoding run in a thread (the decoder
and the encoder release the GIL). Records that do not decode, do not fit the
dataset's Arrow schema or have an event time no ``dt=`` folder can hold are
left out and returned with the reason, for the dead-letter topic. The flush
is durable when ``write`` returns; only then may its offsets be acknowledged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from spotify_stream.sink.buffer import Flush
from spotify_stream.sink.decode import decode
from spotify_stream.sink.objects import ObjectName, by_hour
from spotify_stream.sink.parquet import encode
from spotify_stream.sink.storage import Storage


@dataclass
class Written:
    keys: list[str] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    rejected: list[tuple[bytes, str]] = field(default_factory=list)  # (item, reason)


class LakeWriter:
    def __init__(self, storage: Storage, row_group_rows: int) -> None:
        self.storage = storage
        self.row_group_rows = row_group_rows

    async def write(self, flush: Flush, record: str, event_time: str) -> Written:
        """Write ``flush`` of Avro ``record``\\ s (e.g. ``"Play"``), in hours of ``event_time``."""
        objects, rejected = await asyncio.to_thread(self._encode, flush, record, event_time)
        written = Written(rejected=rejected)
        for name, data, rows in objects:
            await self.storage.put(name.key, data)
            written.keys.append(name.key)
            written.rows += rows
            written.bytes += len(data)
        return written

    def _encode(
        self, flush: Flush, record: str, event_time: str
    ) -> tuple[list[tuple[ObjectName, bytes, int]], list[tuple[bytes, str]]]:
        decoded = decode(flush.items, record)
        hours, outside = by_hour(decoded.table, event_time)
        failed = decoded.failed + [(decoded.rows[row], reason) for row, reason in outside]
        objects = [
            (
                ObjectName(flush.dataset, flush.partition, flush.first, flush.last, hour),
                encode(table, self.row_group_rows),
                table.num_rows,
            )
            for hour, table in hours
        ]
        return objects, [(flush.items[index], reason) for index, reason in sorted(failed)]
