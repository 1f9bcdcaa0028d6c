"""Turns the four entity files into keyed records for the entity topics.

Pure and broker-free: ``CatalogReader.records()`` yields ``(topic, key, record)``
for every valid row and a DeadLetter for every rejected one, while
``stats`` counts, per file, rows read, produced and rejected by reason (always
read == produced + rejected).

With a ``limit`` it reads the first ``limit`` rows of the tracks file and, of
the other files, only the rows of those tracks: their album rows, their audio
features and their albums' artists, so every track read can be joined whole.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from spotify_stream import topics
from spotify_stream.ingest.cleaning import (
    FirstWins,
    Rejected,
    clean_album_row,
    clean_artist,
    clean_features,
    clean_track,
    merge_track,
)
from spotify_stream.ingest.csvfile import CsvFile, HeaderError
from spotify_stream.ingest.sources import (
    ALBUMS_FILE,
    ARTISTS_FILE,
    ENTITY_FILES,
    FEATURES_FILE,
    REQUIRED_COLUMNS,
    TRACKS_FILE,
    SourceFile,
)
from spotify_stream.models.deadletters import dead_letter

Output = tuple[topics.Topic, str, dict[str, Any]]


@dataclass
class FileStats:
    read: int = 0
    produced: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    bytes_read: int = 0
    size: int = 0
    error: str | None = None  # a file-level problem: missing, bad header


class CatalogReader:
    """Reads the entity files of one source in order: albums, artists, features, tracks."""

    def __init__(
        self,
        files: dict[str, SourceFile | None],
        *,
        max_field_chars: int,
        max_raw_bytes: int,
        limit: int | None = None,
    ) -> None:
        self.files = files
        self.max_field_chars = max_field_chars
        self.max_raw_bytes = max_raw_bytes
        self.limit = limit
        self.stats: dict[str, FileStats] = {name: FileStats() for name in ENTITY_FILES}
        self._membership: dict[str, dict[str, Any]] = {}
        self._albums_seen: set[str] = set()
        albums = files.get(ALBUMS_FILE)
        self._albums_ts = albums.modified_ms if albums else 0
        self._wanted = self._selection(limit) if limit is not None else {}

    def _selection(self, limit: int) -> dict[str, tuple[str, set[str]]]:
        """Per file but the tracks file, the column and values of the rows a limit
        keeps: those of the first ``limit`` tracks."""
        tracks = {row.get("id", "").strip() for row in self._rows(TRACKS_FILE, limit)}
        artists = {
            row.get("artist_id", "").strip()
            for row in self._rows(ALBUMS_FILE)
            if row.get("track_id", "").strip() in tracks
        }
        return {
            ALBUMS_FILE: ("track_id", tracks),
            FEATURES_FILE: ("id", tracks),
            ARTISTS_FILE: ("id", artists),
        }

    def _rows(self, name: str, limit: int | None = None) -> Iterator[dict[str, str]]:
        """The well-formed rows of a file as read (the first ``limit`` records only)."""
        source = self.files.get(name)
        if source is None:
            return
        with open(source.path, "rb") as stream:
            try:
                csv_file = CsvFile(stream, name, self.max_field_chars)
            except HeaderError:
                return  # reported when the file is read
            for n, record in enumerate(csv_file):
                if limit is not None and n >= limit:
                    return
                if record.error is None:
                    yield dict(zip(csv_file.header, record.fields, strict=True))

    def records(self) -> Iterator[Output]:
        handlers: dict[str, Callable[[dict[str, str], int, int, FirstWins], list[Output]]] = {
            ALBUMS_FILE: self._album_row,
            ARTISTS_FILE: self._artist_row,
            FEATURES_FILE: self._features_row,
            TRACKS_FILE: self._track_row,
        }
        for name in ENTITY_FILES:
            yield from self._read_file(name, handlers[name])
        yield from self._tracks_without_popularity()

    def _read_file(self, name: str, handler: Callable[..., list[Output]]) -> Iterator[Output]:
        stats = self.stats[name]
        source = self.files.get(name)
        if source is None:
            stats.error = f"{name}: not found"
            return
        stats.size = source.size
        with open(source.path, "rb") as stream:
            try:
                csv_file = CsvFile(stream, name, self.max_field_chars)
            except HeaderError as exc:
                stats.error = str(exc)
                return
            missing = [c for c in REQUIRED_COLUMNS[name] if c not in csv_file.header]
            if missing:
                found = ", ".join(csv_file.header[:8]) + (
                    ", ..." if len(csv_file.header) > 8 else ""
                )
                stats.error = (
                    f"{name}: header lacks required columns {', '.join(missing)} (found: {found})"
                )
                return
            header = csv_file.header
            dedup = FirstWins()
            column, wanted = self._wanted.get(name, ("", None))
            at = header.index(column) if wanted is not None else -1
            for record in csv_file:
                if name == TRACKS_FILE and self.limit is not None and stats.read >= self.limit:
                    break
                if wanted is not None and (
                    record.error is not None or record.fields[at].strip() not in wanted
                ):
                    continue  # not a row of the tracks a limit keeps
                stats.read += 1
                stats.bytes_read = csv_file.bytes_read
                try:
                    if record.error is not None:
                        raise Rejected(record.error, record.detail or "")
                    row = dict(zip(header, record.fields, strict=True))
                    out = handler(row, record.line, source.modified_ms, dedup)
                except Rejected as rejected:
                    stats.rejected[rejected.reason] += 1
                    key = f"{name}:{record.line}"
                    yield (
                        topics.DEADLETTER,
                        key,
                        dead_letter(
                            rejected.reason,
                            rejected.detail,
                            name,
                            csv_file.raw(),
                            self.max_raw_bytes,
                            line=record.line,
                            row=record.row,
                        ),
                    )
                    continue
                stats.produced += 1
                yield from out
            stats.bytes_read = csv_file.bytes_read

    def _album_row(self, row: dict[str, str], line: int, ts: int, dedup: FirstWins) -> list[Output]:
        album, membership = clean_album_row(row, ts)
        dedup.check(membership["track_id"], line)
        self._membership[membership["track_id"]] = membership
        if album["album_id"] in self._albums_seen:
            return []  # the album's first valid row made its record
        self._albums_seen.add(album["album_id"])
        return [(topics.ALBUMS, album["album_id"], album)]

    def _artist_row(
        self, row: dict[str, str], line: int, ts: int, dedup: FirstWins
    ) -> list[Output]:
        artist = clean_artist(row, ts)
        dedup.check(artist["artist_id"], line)
        return [(topics.ARTISTS, artist["artist_id"], artist)]

    def _features_row(
        self, row: dict[str, str], line: int, ts: int, dedup: FirstWins
    ) -> list[Output]:
        features = clean_features(row, ts)
        dedup.check(features["track_id"], line)
        return [(topics.AUDIO_FEATURES, features["track_id"], features)]

    def _track_row(self, row: dict[str, str], line: int, ts: int, dedup: FirstWins) -> list[Output]:
        part = clean_track(row, ts)
        dedup.check(part["track_id"], line)
        membership = self._membership.pop(part["track_id"], None)
        updated_at = max(ts, self._albums_ts) if membership else ts
        return [(topics.TRACKS, part["track_id"], merge_track(part, membership, updated_at))]

    def _tracks_without_popularity(self) -> Iterator[Output]:
        """Tracks known only from the albums file still reach the tracks topic."""
        for track_id, membership in self._membership.items():
            yield topics.TRACKS, track_id, merge_track(None, membership, self._albums_ts)
        self._membership.clear()
