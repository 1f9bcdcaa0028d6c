"""Where the Kaggle entity files come from: a local directory or an ``s3://`` prefix.

S3 objects are downloaded (streamed, through aiobotocore and the standard AWS
credential chain) into a local work directory first, so the CSV reader always
reads a local file.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from spotify_stream.errors import UsageError, UserError, no_credentials

ARTISTS_FILE = "spotify_artist_data_2023.csv"
ALBUMS_FILE = "spotify-albums_data_2023.csv"
TRACKS_FILE = "spotify_tracks_data_2023.csv"
FEATURES_FILE = "spotify_features_data_2023.csv"

#: The four entity files, in the order the producer reads them (albums first:
#: their rows carry the track membership that completes each Track).
ENTITY_FILES = (ALBUMS_FILE, ARTISTS_FILE, FEATURES_FILE, TRACKS_FILE)

#: The Kaggle files' headers, in their column order (the generator writes these).
KAGGLE_COLUMNS: dict[str, tuple[str, ...]] = {
    ARTISTS_FILE: (
        "id", "name", "artist_popularity", "artist_genres", "followers",
        *(f"genre_{i}" for i in range(7)),
    ),
    ALBUMS_FILE: (
        "track_name", "track_id", "track_number", "duration_ms", "album_type", "artists",
        "total_tracks", "album_name", "release_date", "label", "album_popularity", "album_id",
        "artist_id", *(f"artist_{i}" for i in range(12)), "duration_sec",
    ),
    TRACKS_FILE: ("id", "track_popularity", "explicit"),
    FEATURES_FILE: (
        "danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
        "instrumentalness", "liveness", "valence", "tempo", "type", "id", "uri", "track_href",
        "analysis_url", "duration_ms", "time_signature",
    ),
}  # fmt: skip

#: Columns a file may lack: lists that other columns also carry, and API links.
_OPTIONAL = {
    "artist_genres", *(f"genre_{i}" for i in range(7)), "artists",
    *(f"artist_{i}" for i in range(12)), "duration_sec", "type", "uri", "track_href",
    "analysis_url",
}  # fmt: skip

#: Columns a file must have; others are ignored.
REQUIRED_COLUMNS = {
    name: tuple(c for c in columns if c not in _OPTIONAL)
    for name, columns in KAGGLE_COLUMNS.items()
}


@dataclass(frozen=True)
class SourceFile:
    name: str  # the Kaggle file name
    path: Path  # a local, readable copy
    modified_ms: int  # source modification time: the records' updated_at
    size: int


async def fetch_sources(
    source: str, workdir: Path, s3_endpoint: str | None = None
) -> dict[str, SourceFile | None]:
    """The entity files found at ``source`` (None for each one missing)."""
    if source.startswith("s3://"):
        return await _fetch_s3(source, workdir, s3_endpoint)
    root = Path(source.removeprefix("file://")).expanduser()
    if not root.is_dir():
        raise UsageError(f"source directory not found: {root}")
    found: dict[str, SourceFile | None] = {}
    for name in ENTITY_FILES:
        path = root / name
        if path.is_file():
            stat = path.stat()
            found[name] = SourceFile(name, path, int(stat.st_mtime * 1000), stat.st_size)
        else:
            found[name] = None
    return found


async def _fetch_s3(
    source: str, workdir: Path, endpoint: str | None
) -> dict[str, SourceFile | None]:
    from aiobotocore.session import get_session
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    if not bucket:
        raise UsageError(f"not an S3 location: {source} (expected s3://bucket/prefix)")
    prefix = prefix.strip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    found: dict[str, SourceFile | None] = {}
    session = get_session()
    try:
        async with session.create_client("s3", endpoint_url=endpoint) as s3:
            for name in ENTITY_FILES:
                key = f"{prefix}/{name}" if prefix else name
                try:
                    obj = await s3.get_object(Bucket=bucket, Key=key)
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code", "")
                    if code in ("NoSuchKey", "404"):
                        found[name] = None
                        continue
                    if code == "NoSuchBucket":
                        raise UserError(f"S3 bucket not found: {bucket}") from None
                    raise UserError(f"cannot read s3://{bucket}/{key}: {code or exc}") from None
                path = workdir / name
                tmp = path.with_suffix(".part")
                body = obj["Body"]
                try:
                    with open(tmp, "wb") as out:
                        async for chunk in body.iter_chunks(1 << 20):
                            await asyncio.to_thread(out.write, chunk)
                finally:
                    body.close()
                os.replace(tmp, path)
                modified = int(obj["LastModified"].timestamp() * 1000)
                found[name] = SourceFile(name, path, modified, path.stat().st_size)
    except NoCredentialsError:
        raise no_credentials(source) from None
    except (BotoCoreError, OSError) as exc:
        raise UserError(f"cannot read {source}: {exc}") from None
    return found
