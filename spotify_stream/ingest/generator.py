"""Writes realistic Kaggle-format entity files for demos, tests and benchmarks.

Audio features come from genre groups (so clusters exist), popularity and
followers are Zipf-like, albums hold several tracks, some tracks credit several
artists, release dates span decades with year / month / day precision, and names
carry commas, quotes, newlines and non-ASCII letters. A fraction of extra rows
are anomalies; ``_anomalies.csv`` lists each one (file, row, reason) as the
ground truth the tests compare the dead-letter topic with.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spotify_stream.ingest.sources import (
    ALBUMS_FILE,
    ARTISTS_FILE,
    FEATURES_FILE,
    KAGGLE_COLUMNS,
    TRACKS_FILE,
)
from spotify_stream.models.deadletters import Reason

ANOMALY_MANIFEST = "_anomalies.csv"

ARTIST_HEADER = list(KAGGLE_COLUMNS[ARTISTS_FILE])
ALBUM_HEADER = list(KAGGLE_COLUMNS[ALBUMS_FILE])
TRACK_HEADER = list(KAGGLE_COLUMNS[TRACKS_FILE])
FEATURE_HEADER = list(KAGGLE_COLUMNS[FEATURES_FILE])


@dataclass(frozen=True)
class GenreGroup:
    name: str
    subgenres: tuple[str, ...]
    # means of danceability, energy, speechiness, acousticness, instrumentalness,
    # liveness, valence; then loudness (dB) and tempo (BPM)
    unit_means: tuple[float, float, float, float, float, float, float]
    loudness: float
    tempo: float
    explicit_rate: float
    weight: float


GENRES = (
    GenreGroup(
        "pop",
        ("pop", "dance pop", "electropop", "k-pop"),
        (0.70, 0.70, 0.06, 0.15, 0.02, 0.15, 0.60),
        -6,
        118,
        0.15,
        0.22,
    ),
    GenreGroup(
        "hip hop",
        ("hip hop", "rap", "trap", "drill"),
        (0.78, 0.65, 0.30, 0.12, 0.01, 0.18, 0.50),
        -6.5,
        95,
        0.65,
        0.16,
    ),
    GenreGroup(
        "rock",
        ("rock", "indie rock", "alternative rock", "classic rock"),
        (0.48, 0.80, 0.05, 0.08, 0.08, 0.20, 0.45),
        -5.5,
        128,
        0.08,
        0.14,
    ),
    GenreGroup(
        "electronic",
        ("edm", "house", "techno", "trance"),
        (0.68, 0.85, 0.06, 0.03, 0.60, 0.20, 0.40),
        -5,
        126,
        0.05,
        0.10,
    ),
    GenreGroup(
        "classical",
        ("classical", "baroque", "orchestra", "early romantic era"),
        (0.25, 0.12, 0.04, 0.95, 0.85, 0.12, 0.20),
        -22,
        95,
        0.0,
        0.07,
    ),
    GenreGroup(
        "jazz",
        ("jazz", "bebop", "smooth jazz", "vocal jazz"),
        (0.55, 0.35, 0.05, 0.75, 0.45, 0.15, 0.50),
        -12,
        110,
        0.01,
        0.07,
    ),
    GenreGroup(
        "metal",
        ("metal", "death metal", "metalcore", "thrash metal"),
        (0.38, 0.95, 0.09, 0.01, 0.25, 0.25, 0.25),
        -4,
        140,
        0.25,
        0.08,
    ),
    GenreGroup(
        "latin",
        ("reggaeton", "latin pop", "salsa", "bachata"),
        (0.80, 0.75, 0.10, 0.20, 0.01, 0.15, 0.80),
        -5.5,
        100,
        0.30,
        0.09,
    ),
    GenreGroup(
        "ambient",
        ("ambient", "lo-fi", "chillhop", "new age"),
        (0.45, 0.20, 0.05, 0.80, 0.90, 0.10, 0.30),
        -18,
        80,
        0.0,
        0.07,
    ),
)

_SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ra",
    "ne",
    "so",
    "ta",
    "vi",
    "ze",
    "ly",
    "an",
    "el",
    "or",
    "un",
    "bri",
    "sto",
    "mar",
    "del",
    "jo",
    "ré",
    "ñu",
    "ø",
    "ü",
    "ça",
    "日",
    "星",
    "ль",
    "ой",
)
_WORDS = (
    "Love",
    "Night",
    "Fire",
    "Dream",
    "Heart",
    "Sky",
    "Rain",
    "Gold",
    "Echo",
    "River",
    "Shadow",
    "Light",
    "Summer",
    "Ghost",
    "Ocean",
    "Café",
    "Niño",
    "Über",
    "Señal",
    "夜",
)
_LABELS = (
    "Sony Music Entertainment, Inc.",
    "Universal Music",
    "Warner Records",
    "XL Recordings",
    "Independent",
    "Columbia",
    "Atlantic Records",
    "Sub Pop",
    "Deutsche Grammophon",
    'Label "Quoted" Ltd.',
)
_B62 = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))


class _Names:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def ids(self, n: int) -> list[str]:
        idx = self.rng.integers(0, 62, size=(n, 22))
        return ["".join(row) for row in _B62[idx]]

    def person(self) -> str:
        rng = self.rng
        parts = [
            "".join(rng.choice(_SYLLABLES, size=rng.integers(2, 4))).capitalize()
            for _ in range(rng.integers(1, 3))
        ]
        return " ".join(parts)

    def title(self) -> str:
        rng = self.rng
        words = list(rng.choice(_WORDS, size=rng.integers(1, 4)))
        title = " ".join(words)
        roll = rng.random()
        if roll < 0.04:
            title += ", Pt. 2"
        elif roll < 0.06:
            title = f'{title} (feat. "{self.person()}")'
        elif roll < 0.065:
            title = f"{title}\n(Live)"  # an embedded newline, as real exports have
        return title


def _release(rng: np.random.Generator) -> str:
    year = int(
        min(2023, 1960 + rng.gamma(6, 6) if rng.random() < 0.3 else 2023 - rng.exponential(9))
    )
    year = max(year, 1955)
    day = dt.date(year, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
    roll = rng.random()
    if roll < 0.10:
        return f"{day.year}"
    if roll < 0.15:
        return f"{day.year}-{day.month:02d}"
    return f"{day.isoformat()} 00:00:00 UTC"


def generate(
    out: Path,
    tracks: int,
    *,
    seed: int = 42,
    anomalies: float = 0.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Write the four entity files to ``out``; returns rows written per file."""
    if tracks < 1:
        raise ValueError("tracks must be at least 1")
    if not 0.0 <= anomalies < 1.0:
        raise ValueError("anomalies must be a fraction in [0, 1)")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = _Names(rng)
    say = progress or (lambda _msg: None)

    # -- artists ---------------------------------------------------------------
    n_artists = max(3, tracks // 8)
    artist_ids = names.ids(n_artists)
    weights = np.array([g.weight for g in GENRES])
    artist_genre = rng.choice(len(GENRES), size=n_artists, p=weights / weights.sum())
    rank = rng.permutation(n_artists) + 1
    artist_pop = np.clip(np.round(95 * rank**-0.25 + rng.normal(0, 6, n_artists)), 0, 100).astype(
        int
    )
    followers = np.round(np.exp(3 + artist_pop / 9 + rng.normal(0, 1, n_artists))).astype(int)
    artist_names = [names.person() for _ in range(n_artists)]
    zipf = 1.0 / rank**1.1
    zipf /= zipf.sum()

    # -- albums and tracks -------------------------------------------------------
    track_ids = names.ids(tracks)
    album_rows: list[list[str]] = []
    track_rows: list[list[str]] = []
    feature_rows: list[list[str]] = []
    made = 0
    while made < tracks:
        artist = int(rng.choice(n_artists, p=zipf))
        group = GENRES[artist_genre[artist]]
        kind = rng.choice(["album", "single", "compilation"], p=[0.5, 0.35, 0.15])
        size = int(
            {
                "album": rng.integers(6, 15),
                "single": rng.integers(1, 4),
                "compilation": rng.integers(10, 21),
            }[kind]
        )
        size = min(size, tracks - made)
        album_id = names.ids(1)[0]
        album_pop = int(np.clip(artist_pop[artist] + rng.normal(-5, 8), 0, 100))
        album_name = names.title()
        release = _release(rng)
        label = str(rng.choice(_LABELS))
        for number in range(1, size + 1):
            track_id = track_ids[made]
            made += 1
            credited = [artist]
            if rng.random() < 0.2:
                credited += list(rng.choice(n_artists, size=rng.integers(1, 3)))
            credited = list(dict.fromkeys(credited))
            credit_names = [artist_names[a] for a in credited]
            duration_ms = int(max(30_000, rng.normal(210_000, 60_000)))
            album_rows.append(
                [
                    names.title(),
                    track_id,
                    str(number),
                    str(duration_ms),
                    str(kind),
                    str(credit_names),
                    str(size),
                    album_name,
                    release,
                    label,
                    str(album_pop),
                    album_id,
                    artist_ids[artist],
                    *(credit_names + [""] * 12)[:12],
                    f"{duration_ms / 1000:.3f}",
                ]
            )
            track_pop = int(np.clip(album_pop + rng.normal(0, 10), 0, 100))
            track_rows.append(
                [track_id, str(track_pop), str(bool(rng.random() < group.explicit_rate))]
            )
            unit = np.clip(np.array(group.unit_means) + rng.normal(0, 0.08, 7), 0, 1)
            feature_rows.append(
                [
                    f"{unit[0]:.4f}",
                    f"{unit[1]:.4f}",
                    str(int(rng.integers(0, 12))),
                    f"{min(0.0, group.loudness + rng.normal(0, 2.5)):.3f}",
                    str(int(rng.random() < 0.6)),
                    f"{unit[2]:.4f}",
                    f"{unit[3]:.4f}",
                    f"{unit[4]:.4f}",
                    f"{unit[5]:.4f}",
                    f"{unit[6]:.4f}",
                    f"{max(40.0, group.tempo + rng.normal(0, 12)):.3f}",
                    "audio_features",
                    track_id,
                    f"spotify:track:{track_id}",
                    f"https://api.spotify.com/v1/tracks/{track_id}",
                    f"https://api.spotify.com/v1/audio-analysis/{track_id}",
                    str(duration_ms),
                    str(int(rng.choice([3, 4, 4, 4, 4, 5]))),
                ]
            )
    say(
        f"generated {tracks} tracks on {len({r[11] for r in album_rows})} albums by {n_artists} artists"
    )

    artist_rows = []
    for i in range(n_artists):
        group = GENRES[artist_genre[i]]
        genres = list(rng.choice(group.subgenres, size=rng.integers(1, 4), replace=False))
        if rng.random() < 0.1:
            other = GENRES[int(rng.integers(0, len(GENRES)))]
            genres.append(str(rng.choice(other.subgenres)))
        genres = list(dict.fromkeys(genres))[:7]
        artist_rows.append(
            [
                artist_ids[i],
                artist_names[i],
                str(artist_pop[i]),
                str(genres),
                f"{float(followers[i]):.1f}",
                *(genres + [""] * 7)[:7],
            ]
        )

    # -- anomalies: extra rows, each a corrupted copy of a valid one -------------
    manifest: list[tuple[str, int, str]] = []

    def spoil(
        rows: list[list[str]],
        header: list[str],
        file: str,
        corruptions: list[tuple[Reason, Callable[[list[str]], None]]],
    ) -> list[list[str]]:
        if anomalies == 0:
            return rows
        result: list[list[str]] = []
        for row in rows:
            result.append(row)
            if rng.random() < anomalies:
                reason, corrupt = corruptions[int(rng.integers(0, len(corruptions)))]
                bad = list(row)
                corrupt(bad)
                result.append(bad)
                manifest.append((file, len(result), str(reason)))
        return result

    def setter(header: list[str], column: str, value: str) -> Callable[[list[str]], None]:
        index = header.index(column)

        def apply(row: list[str]) -> None:
            row[index] = value

        return apply

    def bump(header: list[str], column: str) -> Callable[[list[str]], None]:
        index = header.index(column)

        def apply(row: list[str]) -> None:  # a later, different copy of a valid row
            row[index] = str(int(float(row[index] or 0)) // 2)

        return apply

    artist_rows = spoil(
        artist_rows,
        ARTIST_HEADER,
        ARTISTS_FILE,
        [
            (Reason.POPULARITY_OUT_OF_RANGE, setter(ARTIST_HEADER, "artist_popularity", "150")),
            (Reason.MISSING_ID, setter(ARTIST_HEADER, "id", "")),
            (Reason.BAD_VALUE, setter(ARTIST_HEADER, "followers", "lots")),
            (Reason.DUPLICATE_ID, bump(ARTIST_HEADER, "artist_popularity")),
        ],
    )
    album_rows = spoil(
        album_rows,
        ALBUM_HEADER,
        ALBUMS_FILE,
        [
            (Reason.NEGATIVE_DURATION, setter(ALBUM_HEADER, "duration_ms", "-1000")),
            (Reason.BAD_DATE, setter(ALBUM_HEADER, "release_date", "20x9-13-45")),
            (Reason.POPULARITY_OUT_OF_RANGE, setter(ALBUM_HEADER, "album_popularity", "101")),
            (Reason.DUPLICATE_ID, bump(ALBUM_HEADER, "album_popularity")),
        ],
    )
    track_rows = spoil(
        track_rows,
        TRACK_HEADER,
        TRACKS_FILE,
        [
            (Reason.POPULARITY_OUT_OF_RANGE, setter(TRACK_HEADER, "track_popularity", "-7")),
            (Reason.MISSING_ID, setter(TRACK_HEADER, "id", " ")),
            (Reason.BAD_VALUE, setter(TRACK_HEADER, "explicit", "maybe")),
            (Reason.DUPLICATE_ID, bump(TRACK_HEADER, "track_popularity")),
        ],
    )
    feature_rows = spoil(
        feature_rows,
        FEATURE_HEADER,
        FEATURES_FILE,
        [
            (Reason.TEMPO_NOT_POSITIVE, setter(FEATURE_HEADER, "tempo", "0")),
            (Reason.FEATURE_OUT_OF_RANGE, setter(FEATURE_HEADER, "danceability", "1.7")),
            (Reason.NEGATIVE_DURATION, setter(FEATURE_HEADER, "duration_ms", "-5")),
            (Reason.DUPLICATE_ID, bump(FEATURE_HEADER, "duration_ms")),
        ],
    )

    written = {}
    for file, header, rows in (
        (ARTISTS_FILE, ARTIST_HEADER, artist_rows),
        (ALBUMS_FILE, ALBUM_HEADER, album_rows),
        (TRACKS_FILE, TRACK_HEADER, track_rows),
        (FEATURES_FILE, FEATURE_HEADER, feature_rows),
    ):
        # Kaggle's files are UTF-8 with CRLF line ends; Excel-style exports add a BOM.
        with open(
            out / file, "w", newline="", encoding="utf-8-sig" if file == TRACKS_FILE else "utf-8"
        ) as fh:
            writer = csv.writer(fh, lineterminator="\r\n")
            writer.writerow(header)
            writer.writerows(rows)
        written[file] = len(rows)
        say(f"wrote {file}: {len(rows)} rows")
    with open(out / ANOMALY_MANIFEST, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "row", "reason"])
        writer.writerows(manifest)
    return written
