"""The charts, defined once: the live dashboard, the static report and QuickSight draw these.

A chart reads either a named query over the lake (``query``) or a live
number of the worker (``live``); its fields, axis labels and units are here so
that each renderer labels it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    kind: str  # bar | line | scatter | heatmap | table
    description: str
    x: str = ""  # the field on the category or x axis
    y: str = ""  # the field of the value
    x_label: str = ""
    y_label: str = ""  # with the unit
    series: str | None = None  # a line per value of this field
    query: str | None = None  # the named query behind it
    params: dict[str, str] = field(default_factory=dict)
    live: bool = False  # from the worker's tables, refreshed without reload

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "params"}


CHARTS = (
    Chart(
        "top_albums",
        "Top albums of the last 5 years",
        "bar",
        "The most popular albums released in the five years before today (Spotify "
        "popularity, latest version of each album).",
        x="name",
        y="popularity",
        x_label="album",
        y_label="popularity (0-100)",
        query="top_albums",
        params={"n": "10"},
    ),
    Chart(
        "most_streamed_artists",
        "Most streamed artists",
        "bar",
        "Artists by plays of their tracks, over every play in the lake.",
        x="artist_name",
        y="plays",
        x_label="artist",
        y_label="plays",
        query="most_streamed_artists",
        params={"n": "10"},
    ),
    Chart(
        "top_genres_over_time",
        "Top genres over time",
        "line",
        "Plays per day of the five most played genres of each day (a play counts for "
        "every genre of its track's artist).",
        x="day",
        y="plays",
        x_label="day (UTC)",
        y_label="plays per day",
        series="genre",
        query="top_genres_over_time",
        params={"n": "5"},
    ),
    Chart(
        "rolling_artists",
        "Most streamed artists, current rolling window",
        "bar",
        "Plays per artist in the latest closed hopping window, live from the stream.",
        x="name",
        y="plays",
        x_label="artist",
        y_label="plays in the window",
        live=True,
    ),
    Chart(
        "cluster_scatter",
        "Tracks by audio features",
        "scatter",
        "Tracks on the first two principal components of their standardized audio "
        "features, by cluster of the newest model version (a sample when there are many).",
        x="pc1",
        y="pc2",
        x_label="principal component 1",
        y_label="principal component 2",
        series="cluster_id",
    ),
    Chart(
        "cluster_profiles",
        "Cluster profiles",
        "heatmap",
        "Each cluster's mean of each audio feature, in standard deviations from the mean "
        "of all tracks.",
        x="feature",
        y="cluster",
        x_label="audio feature",
        y_label="cluster (tracks)",
        query="cluster_profiles",
    ),
    Chart(
        "pipeline",
        "Pipeline",
        "table",
        "Records per second over the last minutes (all topics), then per topic with "
        "consumer lag, the dead letters this worker sent by reason, and the last lake "
        "flush of each dataset, live from this worker.",
        live=True,
    ),
)

BY_ID = {chart.id: chart for chart in CHARTS}
