"""The lake's datasets: which topic each holds, and which field files it by hour."""

from __future__ import annotations

from dataclasses import dataclass

from spotify_stream import topics


@dataclass(frozen=True)
class Dataset:
    name: str
    topic: topics.Topic
    event_time: str  # the field that decides the dt=/hr= folder


DATASETS = (
    Dataset("artists", topics.ARTISTS, "updated_at"),
    Dataset("albums", topics.ALBUMS, "updated_at"),
    Dataset("tracks_enriched", topics.ENRICHED, "updated_at"),
    Dataset("plays", topics.PLAYS, "played_at"),
    Dataset("popularity", topics.POPULARITY, "window_start"),
    Dataset("clusters", topics.CLUSTERS, "published_at"),
    Dataset("deadletters", topics.DEADLETTER, "failed_at"),
)
