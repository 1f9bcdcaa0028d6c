"""The enrichment join: tracks + album + primary artist + audio features.

Tracks, features and join retries share the key (track_id) and the partition
count, so one agent sees everything about a track in order. Artists and albums
come from the worker's broadcast ``DimensionStore``.

- A track whose album, artist or features are missing waits in ``pending``
  (track_id -> first-seen time + track). ``index`` maps each album and artist
  id to the tracks of this worker that reference it, so an arriving or changed
  dimension sends a retry for exactly those tracks; arriving features retry
  their own track directly.
- After ``join_max_wait`` a waiting track is emitted with nulls, ``complete``
  false and the missing parts named. A later arrival re-emits it complete.
- A track with all its features waits, the same way, for the first cluster
  model (a cold start), so it is emitted once, labelled, rather than once
  unlabelled and again labelled.
- ``enriched`` holds what was last emitted; its changelog *is* the output topic
  ``spotify.tracks.enriched``. A record is emitted only when its bytes differ
  from the stored ones, so retries and replays never emit duplicates with
  different content, and a changed dimension re-emits every affected track.

The package: ``join`` (the ``Enricher``: join state and its protocol),
``assembly`` (which fields come from where, and the encoded parts), ``labels``
(cluster labels), ``training`` (what the trainer is handed), ``retry`` (the
join-retry messages).
"""

from spotify_stream.agents.enrichment.assembly import (
    ALBUM_FIELDS,
    ARTIST_FIELDS,
    FEATURE_FIELDS,
    JOIN_FIELDS,
    PARTS,
    TRACK_FIELDS,
    encode_distance,
    features_part,
    missing_parts,
)
from spotify_stream.agents.enrichment.join import Enricher
from spotify_stream.agents.enrichment.retry import Retry

__all__ = [
    "ALBUM_FIELDS",
    "ARTIST_FIELDS",
    "FEATURE_FIELDS",
    "JOIN_FIELDS",
    "PARTS",
    "TRACK_FIELDS",
    "Enricher",
    "Retry",
    "encode_distance",
    "features_part",
    "missing_parts",
]
