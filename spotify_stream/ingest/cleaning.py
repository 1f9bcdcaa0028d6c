"""Cleaning rules: the one place that decides what a valid row is.

Each ``clean_*`` function takes a row (column name -> cell text) and returns the
record(s) for the data contract, or raises :class:`Rejected` with a reason from
:class:`Reason`. Empty cells become nulls; numbers written as ``12.0`` are
accepted where an integer is expected; out-of-range values are rejected, never
clipped, so the dead-letter topic shows what the source really held.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from spotify_stream.models.deadletters import Reason

Row = dict[str, str]

#: Audio features that Spotify defines on [0, 1].
UNIT_FEATURES = (
    "danceability",
    "energy",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
)
ARTIST_COLUMNS = tuple(f"artist_{i}" for i in range(12))
GENRE_COLUMNS = tuple(f"genre_{i}" for i in range(7))


class Rejected(ValueError):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# -- cells ---------------------------------------------------------------------


def text(row: Row, column: str) -> str | None:
    value = row.get(column, "").strip()
    return value or None


def required_id(row: Row, column: str) -> str:
    value = text(row, column)
    if value is None:
        raise Rejected(Reason.MISSING_ID, f"{column} is empty")
    return value


#: The largest magnitude of each Avro integer type (the field's type in ``models/schemas``).
_AVRO_INTEGERS = {"int": 1 << 31, "long": 1 << 63}


def integer(row: Row, column: str, avro: str = "long") -> int | None:
    """A whole number that fits the Avro type ``avro`` (``int`` or ``long``)."""
    value = text(row, column)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:  # also for more than 4,300 digits
        number = _whole(value, column)
    limit = _AVRO_INTEGERS[avro]
    if not -limit <= number < limit:
        raise Rejected(
            Reason.BAD_VALUE, f"{_cut(value, column)} is outside the range of an Avro {avro}"
        )
    return number


def _whole(value: str, column: str) -> int:
    """``12.0`` or ``1e3`` as an int."""
    try:
        number = float(value)
    except ValueError:
        raise Rejected(Reason.BAD_VALUE, f"{_cut(value, column)} is not a number") from None
    if not number.is_integer():
        raise Rejected(Reason.BAD_VALUE, f"{_cut(value, column)} is not a whole number")
    return int(number)


def _cut(value: str, column: str) -> str:
    """``column=value`` for a reason, a long value cut short."""
    shown = value if len(value) <= 40 else f"{value[:40]}... ({len(value)} characters)"
    return f"{column}={shown!r}"


def real(row: Row, column: str) -> float | None:
    value = text(row, column)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise Rejected(Reason.BAD_VALUE, f"{_cut(value, column)} is not a number") from None
    if not math.isfinite(number):
        raise Rejected(Reason.BAD_VALUE, f"{_cut(value, column)} is not finite")
    return number


_TRUE = {"true", "t", "1", "yes"}
_FALSE = {"false", "f", "0", "no"}


def boolean(row: Row, column: str) -> bool | None:
    value = text(row, column)
    if value is None:
        return None
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise Rejected(Reason.BAD_VALUE, f"{_cut(value, column)} is not true/false")


def popularity(row: Row, column: str) -> int | None:
    value = integer(row, column, "int")
    if value is not None and not 0 <= value <= 100:
        raise Rejected(Reason.POPULARITY_OUT_OF_RANGE, f"{column}={value} is outside 0-100")
    return value


def duration(row: Row, column: str) -> int | None:
    value = integer(row, column)
    if value is not None and value < 0:
        raise Rejected(Reason.NEGATIVE_DURATION, f"{column}={value} is negative")
    return value


def non_negative(row: Row, column: str, avro: str = "long") -> int | None:
    value = integer(row, column, avro)
    if value is not None and value < 0:
        raise Rejected(Reason.BAD_VALUE, f"{column}={value} is negative")
    return value


_DATE = re.compile(
    r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?: ?(?:UTC|Z|[+-]00:?00))?$"
)


def release_date(row: Row, column: str) -> tuple[dt.date | None, str | None]:
    """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD[ HH:MM:SS UTC]`` -> (first day, precision)."""
    value = text(row, column)
    if value is None:
        return None, None
    match = _DATE.match(value)
    if match is None:
        raise Rejected(Reason.BAD_DATE, f"{_cut(value, column)} is not a date")
    year, month, day = match.groups()
    try:
        date = dt.date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        raise Rejected(Reason.BAD_DATE, f"{column}={value!r} is not a calendar date") from None
    if date.year < 1000:
        raise Rejected(Reason.BAD_DATE, f"{column}={value!r} is before year 1000")
    precision = "day" if day else "month" if month else "year"
    return date, precision


def listing(row: Row, columns: tuple[str, ...], fallback: str | None = None) -> list[str]:
    """Non-empty cells of numbered columns, in order, without repeats.

    When none of them is present, ``fallback`` is parsed as a list literal
    (``"['pop', 'dance pop']"``) or a comma-separated string.
    """
    values = [v for v in (text(row, c) for c in columns) if v is not None]
    if not values and fallback is not None:
        values = _parse_list(text(row, fallback))
    return list(dict.fromkeys(values))


#: A quoted item of a list literal, '...' or "..." with backslash escapes.
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _parse_list(value: str | None) -> list[str]:
    """The items of ``['pop', "rock 'n' roll"]`` (the quoted strings, in one linear scan:
    no evaluation of the cell, however deep its brackets) or of ``pop, rock``."""
    if value is None:
        return []
    if value.startswith("["):
        quoted = [
            _ESCAPE.sub(r"\1", single if single is not None else double).strip()
            for single, double in (m.groups() for m in _QUOTED.finditer(value))
        ]
        if quoted:
            return [item for item in quoted if item]
        value = value.strip("[]")
    return [v.strip().strip("'\"") for v in value.split(",") if v.strip().strip("'\"")]


# -- records ---------------------------------------------------------------------


def clean_artist(row: Row, updated_at: int) -> dict[str, Any]:
    artist_id = required_id(row, "id")
    name = text(row, "name")
    if name is None:
        raise Rejected(Reason.BAD_VALUE, "name is empty")
    return {
        "artist_id": artist_id,
        "name": name,
        "popularity": popularity(row, "artist_popularity"),
        "followers": non_negative(row, "followers"),
        "genres": listing(row, GENRE_COLUMNS, fallback="artist_genres"),
        "updated_at": updated_at,
    }


def clean_album_row(row: Row, updated_at: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One row of the albums file -> (album record, the track's membership in it)."""
    album_id = required_id(row, "album_id")
    track_id = required_id(row, "track_id")
    released, precision = release_date(row, "release_date")
    duration_ms = duration(row, "duration_ms")
    if duration_ms is None:
        seconds = real(row, "duration_sec")
        if seconds is not None:
            if seconds < 0:
                raise Rejected(Reason.NEGATIVE_DURATION, f"duration_sec={seconds} is negative")
            duration_ms = round(seconds * 1000)
    album = {
        "album_id": album_id,
        "name": text(row, "album_name"),
        "album_type": text(row, "album_type"),
        "release_date": released,
        "release_date_precision": precision,
        "label": text(row, "label"),
        "popularity": popularity(row, "album_popularity"),
        "total_tracks": non_negative(row, "total_tracks", "int"),
        "artist_id": text(row, "artist_id"),
        "updated_at": updated_at,
    }
    membership = {
        "track_id": track_id,
        "name": text(row, "track_name"),
        "album_id": album_id,
        "track_number": non_negative(row, "track_number", "int"),
        "duration_ms": duration_ms,
        "artist_id": album["artist_id"],
        "artist_names": listing(row, ARTIST_COLUMNS, fallback="artists"),
    }
    return album, membership


def clean_track(row: Row, updated_at: int) -> dict[str, Any]:
    """The tracks file's part of a Track (its id, popularity and explicit flag)."""
    return {
        "track_id": required_id(row, "id"),
        "popularity": popularity(row, "track_popularity"),
        "explicit": boolean(row, "explicit"),
        "updated_at": updated_at,
    }


def merge_track(
    part: dict[str, Any] | None, membership: dict[str, Any] | None, updated_at: int
) -> dict[str, Any]:
    """A full Track from the tracks-file part and/or the albums-file membership."""
    base = part or {"track_id": membership["track_id"], "popularity": None, "explicit": None}
    member = membership or {}
    return {
        "track_id": base["track_id"],
        "name": member.get("name"),
        "album_id": member.get("album_id"),
        "track_number": member.get("track_number"),
        "duration_ms": member.get("duration_ms"),
        "artist_id": member.get("artist_id"),
        "artist_names": member.get("artist_names", []),
        "popularity": base["popularity"],
        "explicit": base["explicit"],
        "updated_at": updated_at,
    }


def clean_features(row: Row, updated_at: int) -> dict[str, Any]:
    record: dict[str, Any] = {"track_id": required_id(row, "id")}
    for column in UNIT_FEATURES:
        value = real(row, column)
        if value is not None and not 0.0 <= value <= 1.0:
            raise Rejected(Reason.FEATURE_OUT_OF_RANGE, f"{column}={value} is outside [0, 1]")
        record[column] = value
    key = integer(row, "key", "int")
    if key is not None and not -1 <= key <= 11:
        raise Rejected(Reason.FEATURE_OUT_OF_RANGE, f"key={key} is outside -1..11")
    mode = integer(row, "mode", "int")
    if mode is not None and mode not in (0, 1):
        raise Rejected(Reason.FEATURE_OUT_OF_RANGE, f"mode={mode} is not 0 or 1")
    tempo = real(row, "tempo")
    if tempo is not None and tempo <= 0:
        raise Rejected(Reason.TEMPO_NOT_POSITIVE, f"tempo={tempo} is not positive")
    record.update(
        key=key,
        loudness=real(row, "loudness"),
        mode=mode,
        tempo=tempo,
        duration_ms=duration(row, "duration_ms"),
        time_signature=non_negative(row, "time_signature", "int"),
        updated_at=updated_at,
    )
    return record


class FirstWins:
    """Duplicate ids resolve to the first valid row; later ones are rejected."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def check(self, key: str, line: int) -> None:
        first = self._seen.setdefault(key, line)
        if first != line:
            raise Rejected(Reason.DUPLICATE_ID, f"{key} first seen at line {first}")
