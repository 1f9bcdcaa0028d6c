"""Topic names and what each one carries: one place, used by producer and agents."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    record: str  # Avro record name in spotify_stream/models/schemas
    key: str | None  # field of the record that is the message key; None: composed (see schema)
    #: a field of event time that may not be ahead of the message's timestamp by more than
    #: ``max_clock_skew`` (``validation``): it moves the popularity windows' clocks
    event_time: str | None = None


ARTISTS = Topic("spotify.artists", "Artist", "artist_id")
ALBUMS = Topic("spotify.albums", "Album", "album_id")
TRACKS = Topic("spotify.tracks", "Track", "track_id")
AUDIO_FEATURES = Topic("spotify.audio-features", "AudioFeatures", "track_id")
PLAYS = Topic("spotify.plays", "Play", "user_id", event_time="played_at")
DEADLETTER = Topic("spotify.deadletter", "DeadLetter", None)  # file:line or topic:partition:offset

ENRICHED = Topic("spotify.tracks.enriched", "EnrichedTrack", "track_id")
POPULARITY = Topic("spotify.popularity", "Popularity", None)  # entity_type:entity_id
CLUSTERS = Topic("spotify.clusters", "ClusterProfile", None)  # model_version:cluster_id

#: Input topics (producer, simulate-plays) and the dead-letter topic.
INPUTS = (ARTISTS, ALBUMS, TRACKS, AUDIO_FEATURES, PLAYS, DEADLETTER)
#: Every public topic.
ALL = (*INPUTS, ENRICHED, POPULARITY, CLUSTERS)
BY_NAME = {topic.name: topic for topic in ALL}


#: Worker-internal topics: join retries and the two popularity repartitions.
JOIN_RETRY = "join-retry"
PLAYS_BY_TRACK = "plays-by-track"
CONTRIBUTIONS = "popularity-contributions"
#: The cluster trainer's input (enriched tracks whose features joined or changed, in
#: Batch messages), its published model versions, and the tracks it read, as the
#: recommendation index holds them (Arrow IPC), which every worker reads: one
#: partition each, so one trainer learns from every row and every reader sees
#: the versions in order.
CLUSTER_TRAINING = "cluster-training"
#: The key of the trainer's other messages: the packed feature vectors
#: (``ml.clustering.VECTOR``, end to end) of tracks whose features arrived or
#: changed, which the model learns from (the enriched tracks feed the profiles
#: and the recommendation index).
TRAINING_VECTORS_KEY = b"vectors"
CLUSTER_MODELS = "cluster-models"
TRACK_INDEX = "track-index"
#: The pipeline's identity: its first record (``ownership``), which the lake and each
#: worker's state directory keep a copy of.
PIPELINE = "pipeline"
SINGLE_PARTITION = (CLUSTER_TRAINING, CLUSTER_MODELS, TRACK_INDEX, PIPELINE)
#: Read whole from the start by every worker.
KEPT_FOREVER = (CLUSTER_MODELS, TRACK_INDEX, PIPELINE)
#: Worker tables; each has a changelog ``<app_id>-<table>-changelog``, except
#: ``enriched``, whose changelog is the output topic itself.
TABLES = ("features", "pending-joins", "enriched", "popularity-panes", "user-plays")


def internal(app_id: str, name: str) -> str:
    """Name of a worker-internal topic."""
    return f"{app_id}-{name}"


def changelog(app_id: str, table: str) -> str:
    return ENRICHED.name if table == "enriched" else f"{app_id}-{table}-changelog"


def single_partition(app_id: str) -> dict[str, int]:
    """Topics created with one partition, whatever ``partitions`` says."""
    return {internal(app_id, n): 1 for n in SINGLE_PARTITION}


def kept_forever(app_id: str) -> dict[str, dict[str, str]]:
    """Topic configs of the topics read whole from the start, whatever the broker's
    retention default (MSK's is 7 days): the model versions, and the tracks every
    worker's recommendation index is rebuilt from."""
    return {internal(app_id, n): {"retention.ms": "-1"} for n in KEPT_FOREVER}


def co_partitioned(app_id: str) -> list[str]:
    """The topics whose keys must meet on equal partitions: the streams the agents
    read with tables, and the tables' changelogs."""
    return [
        TRACKS.name,
        AUDIO_FEATURES.name,
        PLAYS.name,
        *(internal(app_id, n) for n in (JOIN_RETRY, PLAYS_BY_TRACK, CONTRIBUTIONS)),
        *(changelog(app_id, t) for t in TABLES),
    ]


def worker_topics(app_id: str) -> list[str]:
    """Every topic a worker reads or writes; created before Faust subscribes."""
    return [
        *(t.name for t in ALL),
        *(
            internal(app_id, n)
            for n in (JOIN_RETRY, PLAYS_BY_TRACK, CONTRIBUTIONS, *SINGLE_PARTITION)
        ),
        *(changelog(app_id, t) for t in TABLES if t != "enriched"),
    ]
