"""Writes a flush to the lake: one Parquet object per hour, encoded in a thread.

Records that do not fit the dataset's Arrow schema are left out of the files
and returned with the reason, for the dead-letter topic. The flush is durable
when ``write`` returns; only then may its offsets be acknowledged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from spotify_stream.sink.buffer import Flush
from spotify_stream.sink.parquet import encode, schema_of, to_table
from spotify_stream.sink.storage import Storage


@dataclass
class Written:
    keys: list[str] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    rejected: list[tuple[dict[str, Any], str]] = field(default_factory=list)


class LakeWriter:
    def __init__(self, storage: Storage, row_group_rows: int) -> None:
        self.storage = storage
        self.row_group_rows = row_group_rows

    async def write(self, flush: Flush, record: str) -> Written:
        """Write ``flush`` of records of the Avro schema ``record`` (e.g. ``"Play"``)."""
        written = Written()
        schema = schema_of(record)
        for name, rows in flush.objects():
            data, kept, rejected = await asyncio.to_thread(self._encode, rows, schema)
            written.rejected.extend((rows[index], reason) for index, reason in rejected)
            if kept:
                await self.storage.put(name.key, data)
                written.keys.append(name.key)
                written.rows += kept
                written.bytes += len(data)
        return written

    def _encode(self, rows: list[dict[str, Any]], schema: Any) -> tuple[bytes, int, list]:
        table, rejected = to_table(rows, schema)
        return encode(table, self.row_group_rows), table.num_rows, rejected
