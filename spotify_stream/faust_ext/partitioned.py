"""Bulk, explicit-partition access to a Faust table.

Faust tables recover from their changelog on rebalance, keep one RocksDB per
partition and stand by for other workers; we use all of that. What we do not
use is ``table[key] = value``: it sends one changelog message through Faust's
producer per key (2.9k sets/s measured on the embedded broker, against 12.7k/s
for the same agent without the set) and needs the current event to choose the
partition. Here a write goes to the partition's store at once and to the
changelog through the worker's batch sender; the caller flushes the sender
before Faust acknowledges the input, so state is durable before offsets move.

Each partition's store holds, under Faust's own key, the changelog offset its
data covers, as Faust's RocksDB store does for ``table[key] = value``: once the
sender's flush returns, ``record_offsets`` writes the last offset Kafka
acknowledged, and a restart replays only the changelog after it. The offset is
written after the data it covers (a put reaches the store before its changelog
record is sent; a batch's puts go in the same write as the offset), so a store
always holds at least what its offset says.

RocksDB's write-ahead log is off for these stores, as Kafka Streams has it: the
changelog is the durable copy, so the log only cost time (3.2 us a put with it,
0.9 us without, measured with rocksdict 0.3.29). A killed worker loses what was
not yet flushed from the memtable, the offset key with it: RocksDB writes
memtables in order, so what remains is an earlier state and its earlier offset,
and recovery replays from there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import faust
from rocksdict import WriteBatch, WriteOptions

from spotify_stream.kafka import PartitionedSender

_FAUST_OFFSET_KEY = b"__faust\x00offset__"
_NO_WAL = WriteOptions()
_NO_WAL.disable_wal = True


class PartitionedTable:
    def __init__(self, table: faust.Table, sender: PartitionedSender | None = None) -> None:
        self.table = table
        self.sender = sender
        self.changelog: str = table.changelog_topic.get_topic_name()
        self._dbs: dict[int, Any] = {}  # partition -> the store's db, configured by us
        self._staged: dict[int, dict[bytes, bytes | None]] = {}  # partition -> puts of a batch
        self._recorded: dict[int, int] = {}  # partition -> changelog offset written to its store

    @property
    def name(self) -> str:
        return self.table.name

    def _db(self, partition: int) -> Any:
        store = self.table.data
        if not hasattr(store, "_db_for_partition"):  # memory://
            return store.data  # one dict: keys are unique across partitions anyway
        db = store._db_for_partition(partition)
        if self._dbs.get(partition) is not db:  # Faust reopens a db after a rebalance
            db.set_write_options(_NO_WAL)
            self._dbs[partition] = db
            self._recorded.pop(partition, None)  # recovery may have moved it
        return db

    def close(self) -> None:
        """Write the stores' memtables to disk, and let go of them: with the WAL off,
        a stopped worker would otherwise leave its last writes (offsets too) behind."""
        for db in self._dbs.values():
            db.flush()
        self.forget(list(self._dbs))

    def forget(self, partitions: Iterable[int]) -> None:
        """Let go of revoked partitions' stores: Faust drops its reference and reopens
        a store when its partition comes back, which fails while one is still held
        (RocksDB's lock)."""
        for partition in partitions:
            self._dbs.pop(partition, None)
            self._recorded.pop(partition, None)

    def _offset_to_record(self, partition: int, db: Any) -> int | None:
        """The changelog offset Kafka acknowledged last for ``partition``, if its
        store ``db`` does not hold it yet."""
        offset = self.sender.last_offsets.get((self.changelog, partition)) if self.sender else None
        if offset is None or offset <= self._recorded.get(partition, -1):
            return None
        stored = db.get(_FAUST_OFFSET_KEY)
        if stored is not None and int(stored) >= offset:  # recovery read further
            self._recorded[partition] = int(stored)
            return None
        return offset

    def record_offsets(self) -> None:
        """Write into each store the changelog offset its data now covers; called
        once the sender's flush returned (``commits``, step 3)."""
        for partition, db in list(self._dbs.items()):
            if partition in self._staged:
                continue  # its batch writes the offset with its puts
            if (offset := self._offset_to_record(partition, db)) is not None:
                db[_FAUST_OFFSET_KEY] = str(offset).encode()
                self._recorded[partition] = offset

    def get(self, partition: int, key: bytes) -> bytes | None:
        staged = self._staged.get(partition)
        if staged and key in staged:
            return staged[key]
        return self._db(partition).get(key)

    def get_many(self, partition: int, keys: list[bytes]) -> list[bytes | None]:
        """The values of ``keys`` (None where missing), in one RocksDB multi-get."""
        db = self._db(partition)
        values = [db.get(key) for key in keys] if isinstance(db, dict) else db.get(keys)
        if staged := self._staged.get(partition):
            return [staged.get(k, v) for k, v in zip(keys, values, strict=True)]
        return values

    @contextmanager
    def batch(self, partition: int) -> Iterator[None]:
        """Write the puts to ``partition`` made meanwhile in one RocksDB write batch
        (1 us a track less in the enrichment agent); gets see them at once."""
        db = self._db(partition)
        if isinstance(db, dict) or partition in self._staged:  # memory://, or already batching
            yield
            return
        staged = self._staged[partition] = {}
        try:
            yield
        finally:
            del self._staged[partition]
            if staged:
                batch = WriteBatch(raw_mode=True)
                for key, value in staged.items():
                    if value is None:
                        batch.delete(key)
                    else:
                        batch.put(key, value)
                # Acknowledged records of this batch are covered once it is written.
                if (offset := self._offset_to_record(partition, db)) is not None:
                    batch.put(_FAUST_OFFSET_KEY, str(offset).encode())
                    self._recorded[partition] = offset
                db.write(batch)

    async def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Set (``None``: delete) ``key`` locally and queue the changelog record."""
        staged = self._staged.get(partition)
        if staged is not None:
            staged[key] = value
        else:
            db = self._db(partition)
            if value is None:
                if db.get(key) is not None:
                    del db[key]
            else:
                db[key] = value
        assert self.sender is not None, "table opened read-only"
        await self.sender.send(self.changelog, key, value, partition=partition)

    def items(self, partitions: Iterable[int]) -> Iterator[tuple[bytes, bytes]]:
        for partition in partitions:
            for key, value in self._db(partition).items():
                if key != _FAUST_OFFSET_KEY:
                    yield key, value

    def approximate_size(self, partitions: Iterable[int]) -> int:
        total = 0
        for partition in partitions:
            db = self._db(partition)
            if hasattr(db, "property_int_value"):
                total += db.property_int_value("rocksdb.estimate-num-keys") or 0
            else:
                return len(db)
        return total
