"""Artists and albums as every worker sees them: latest version by source time.

Filled by the worker's ``BroadcastReader`` from ``spotify.artists`` and
``spotify.albums``. Values are kept in a local RocksDB as ``updated_at``
(8 bytes) + the Avro body, so a late older version never replaces a newer one;
a bounded dict of decoded records spares the hot join path the decoding. The
store is rebuilt from the topics on every start.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import Any

from faust.stores.rocksdb import RocksDBOptions
from rocksdict import Rdict

from spotify_stream import topics
from spotify_stream.models.codec import DecodeError, codec_for, millis, records_in

#: Dimension kind -> its topic.
KINDS = {"artist": topics.ARTISTS, "album": topics.ALBUMS}
_KIND_OF = {topic.name: kind for kind, topic in KINDS.items()}
_VERSION = struct.Struct(">q")


class DimensionStore:
    def __init__(self, path: Path, cache_size: int, options: dict[str, int]) -> None:
        """``options``: ``Settings.rocksdb_options``, as for the tables' stores."""
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), RocksDBOptions(**options, use_rocksdict=True).as_options())
        self._cache: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self._cache_size = cache_size
        self.counts = dict.fromkeys(KINDS, 0)
        #: ids stored since the last ``take_changes``, by kind
        self.changed: dict[str, list[str]] = {kind: [] for kind in KINDS}
        #: messages the reader skipped; the group member owning the partition dead-letters them
        self.unreadable = 0
        self.stale = 0  # older versions that arrived after newer ones

    def apply_message(self, topic: str, value: bytes | None) -> None:
        kind = _KIND_OF[topic]
        try:
            records = records_in(value or b"")
        except DecodeError:
            self.unreadable += 1
            return
        for name, record in records:
            if name != KINDS[kind].record or not record.get(f"{kind}_id"):
                self.unreadable += 1
            elif self.apply(kind, record):
                self.changed[kind].append(record[f"{kind}_id"])

    def apply(self, kind: str, record: dict[str, Any]) -> bool:
        """Store ``record`` unless a newer version is there; True when stored."""
        key = f"{kind}:{record[f'{kind}_id']}".encode()
        updated_at = millis(record["updated_at"])
        old = self._db.get(key)
        if old is not None and _VERSION.unpack_from(old)[0] > updated_at:
            self.stale += 1
            return False
        body = codec_for(KINDS[kind].record).encode(record)
        if old is not None and old[_VERSION.size :] == body:
            return False  # the same version again
        if old is None:
            self.counts[kind] += 1
        self._db[key] = _VERSION.pack(updated_at) + body
        self._cache[kind].pop(record[f"{kind}_id"], None)
        return True

    def get(self, kind: str, id_: str) -> dict[str, Any] | None:
        cache = self._cache[kind]
        record = cache.get(id_)
        if record is None:
            raw = self._db.get(f"{kind}:{id_}".encode())
            if raw is None:
                return None
            record = records_in(raw[_VERSION.size :])[0][1]
            if len(cache) >= self._cache_size:
                cache.clear()
            if self._cache_size:
                cache[id_] = record
        return record

    def take_changes(self) -> dict[str, list[str]]:
        changed, self.changed = self.changed, {kind: [] for kind in KINDS}
        return changed
