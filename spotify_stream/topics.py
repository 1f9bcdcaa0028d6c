"""Topic names and what each one carries: one place, used by producer and agents."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    record: str  # Avro record name in spotify_stream/models/schemas
    key: str | None  # field of the record that is the message key; None: composed (see schema)


ARTISTS = Topic("spotify.artists", "Artist", "artist_id")
ALBUMS = Topic("spotify.albums", "Album", "album_id")
TRACKS = Topic("spotify.tracks", "Track", "track_id")
AUDIO_FEATURES = Topic("spotify.audio-features", "AudioFeatures", "track_id")
PLAYS = Topic("spotify.plays", "Play", "user_id")
DEADLETTER = Topic("spotify.deadletter", "DeadLetter", None)  # file:line or topic:partition:offset

#: Topics the project creates (output topics of later stages join this list).
ALL = (ARTISTS, ALBUMS, TRACKS, AUDIO_FEATURES, PLAYS, DEADLETTER)
