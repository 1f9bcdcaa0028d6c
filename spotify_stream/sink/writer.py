"""Writes a flush to the lake in the Hive layout: one Parquet object per hour of event time.

Decoding, the split by hour and Parquet encoding run in a thread (the decoder
and the encoder release the GIL). Records of an input topic that break its
rules (``validation``) or do not decode are skipped: their agents dead-letter
them, and the lake holds exactly what the stream processes. Records that do
not fit the dataset's Arrow schema or have an event time no ``dt=`` folder
can hold (and, on our own outputs, records that do not decode) are left out
and returned with the reason, for the dead-letter topic. The flush
is durable when ``write`` returns; only then may its offsets be acknowledged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field

import pyarrow as pa

from spotify_stream.sink.buffer import Flush, Limits, PartitionBuffer
from spotify_stream.sink.datasets import Dataset
from spotify_stream.sink.decode import decode
from spotify_stream.sink.objects import CURATED, ObjectName, by_hour, flushes_after
from spotify_stream.sink.parquet import encode
from spotify_stream.sink.storage import Storage
from spotify_stream.validation import Rules

log = logging.getLogger(__name__)


@dataclass
class Written:
    keys: list[str] = field(default_factory=list)
    files: int = 0
    rows: int = 0
    bytes: int = 0
    rejected: list[tuple[bytes, str]] = field(default_factory=list)  # (item, reason)
    skipped: int = 0  # records the agents dead-letter (``validation.Rules``): not landed


class LakeWriter:
    """The Hive layout: a flush's objects are named by its offset range, so a replay
    after a crash rewrites the same objects (``objects``)."""

    together = False  # each flush is written alone, as it is taken

    def __init__(self, storage: Storage, row_group_rows: int) -> None:
        self.storage = storage
        self.row_group_rows = row_group_rows

    async def recover(
        self, dataset: Dataset, partition: int, committed: int, limits: Limits
    ) -> PartitionBuffer:
        """A buffer for ``partition`` that first cuts where the flushes that began after
        ``committed`` were cut (``StorageUnavailable`` when the lake does not answer)."""
        keys = await self.storage.keys(f"{CURATED}/{dataset.name}/")
        ranges = flushes_after(keys, dataset.name, partition, committed)
        if ranges:
            log.info(
                "%s[%d]: rewriting %d begun flush(es) from offset %d",
                dataset.name,
                partition,
                len(ranges),
                committed,
            )
        return PartitionBuffer.recovering(dataset.name, partition, limits, ranges)

    async def write_all(
        self, flushes: list[Flush], dataset: Dataset, rules: Rules | None
    ) -> Written:
        """Each of ``flushes`` written as ``write`` writes it."""
        written = Written()
        for flush in flushes:
            one = await self.write(flush, dataset.topic.record, dataset.event_time, rules)
            written.keys += one.keys
            written.files += one.files
            written.rows += one.rows
            written.bytes += one.bytes
            written.rejected += one.rejected
            written.skipped += one.skipped
        return written

    async def write(
        self, flush: Flush, record: str, event_time: str, rules: Rules | None = None
    ) -> Written:
        """Write ``flush`` of Avro ``record``\\ s (e.g. ``"Play"``), in hours of ``event_time``.

        ``rules``: those of an input topic, whose agents dead-letter what breaks them
        or does not decode; such records are skipped, not landed nor lettered again.
        """
        objects, rejected, skipped = await asyncio.to_thread(
            self._encode, flush, record, event_time, rules
        )
        written = Written(rejected=rejected, skipped=skipped)
        for name, data, rows in objects:
            await self.storage.put(name.key, data)
            written.keys.append(name.key)
            written.rows += rows
            written.bytes += len(data)
        written.files = len(written.keys)
        return written

    def _encode(
        self, flush: Flush, record: str, event_time: str, rules: Rules | None
    ) -> tuple[list[tuple[ObjectName, bytes, int]], list[tuple[bytes, str]], int]:
        hours, rejected, skipped = rows_of(flush, record, event_time, rules)
        objects = [
            (
                ObjectName(flush.dataset, flush.partition, flush.first, flush.last, hour),
                encode(table, self.row_group_rows),
                table.num_rows,
            )
            for hour, table in hours
        ]
        return objects, rejected, skipped


def rows_of(
    flush: Flush, record: str, event_time: str, rules: Rules | None
) -> tuple[list[tuple[dt.datetime, pa.Table]], list[tuple[bytes, str]], int]:
    """The rows of ``flush`` to land, by hour of ``event_time``; the records left out
    with the reason (for dead letters); how many the agents dead-letter (skipped).
    CPU-bound: call it in a thread."""
    decoded = decode(flush.items, record)
    table, rows, failed, skipped = decoded.table, decoded.rows, decoded.failed, 0
    if rules is None:  # our own output: a record that does not decode is a bug
        failed = failed + decoded.undecodable
    else:
        skipped = len(decoded.undecodable)
        broken = rules.broken_rows(
            table.column(rules.key_field).to_pylist(),
            table.column(rules.event_time).cast(pa.int64()).to_pylist()
            if rules.event_time
            else None,
            flush.partition,
            [flush.timestamps[row] for row in rows],
        )
        if broken:
            keep = [row not in broken for row in range(table.num_rows)]
            table = table.filter(pa.array(keep))
            rows = [row for row, kept in zip(rows, keep, strict=True) if kept]
            skipped += len(broken)
    hours, outside = by_hour(table, event_time)
    failed = failed + [(rows[row], reason) for row, reason in outside]
    rejected = [(flush.items[index], reason) for index, reason in sorted(failed)]
    return hours, rejected, skipped
