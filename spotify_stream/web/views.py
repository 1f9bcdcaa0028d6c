"""Monitoring and lookup endpoints on the worker's Faust web server.

- ``/pipeline/stats``: messages in/out and rates per topic, consumer lag per
  partition, table sizes, pending joins, dead letters by reason, lake sink,
  the cluster model version assigned with, tracks emitted before the first
  model and not yet labelled, uptime.
- ``/metrics``: the same numbers in Prometheus text format.
- ``/artists/{id}``, ``/albums/{id}``: from the worker's broadcast store (any worker).
- ``/tracks/{id}``: the enriched track, from the worker that holds its partition.
- ``/popularity/top?entity=artist&window=1h&n=10``: the latest closed window.
- ``/tracks/{id}/similar?n=10``: nearest tracks by audio features (any worker).
- ``/users/{id}/recommendations?n=10``: from the user's recent plays, on the worker
  that holds the user's partition (see ``ml.recommend``).
- ``/dashboard``: the live dashboard (``web.dashboard``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, Web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from spotify_stream import topics
from spotify_stream.agents.enrichment import Enricher
from spotify_stream.agents.pipeline import Pipeline
from spotify_stream.agents.popularity import PopularityWindows
from spotify_stream.agents.users import RecentPlays
from spotify_stream.dashboard.data import jsonable
from spotify_stream.faust_ext.partitioned import PartitionedTable
from spotify_stream.kafka import partition_for
from spotify_stream.ml.recommend import NotIndexed, TrackIndex
from spotify_stream.models import codec_for
from spotify_stream.sink.consumer import LakeConsumer
from spotify_stream.tables.dimensions import KINDS, DimensionStore
from spotify_stream.tables.leaderboard import Leaderboard
from spotify_stream.tables.windows import window_specs
from spotify_stream.web import dashboard

if TYPE_CHECKING:
    from spotify_stream.app import SpotifyStreamApp

ENTITY_TYPES = ("track", "artist", "album", "genre")
MAX_TOP = 1000
MAX_RECOMMENDED = 100


def error(web: Web, status: int, message: str) -> Response:
    return web.json({"error": message}, status=status)


def count(request: Request, most: int) -> int:
    """The ``n`` parameter (10 when absent); ValueError names what is wrong."""
    raw = request.query.get("n", "10")
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"n must be an integer, not {raw!r}") from None
    if not 1 <= n <= most:
        raise ValueError(f"n must be between 1 and {most}")
    return n


def register(
    app: SpotifyStreamApp,
    *,
    pipeline: Pipeline,
    dimensions: DimensionStore,
    enricher: Enricher,
    leaderboard: Leaderboard,
    windows: PopularityWindows,
    index: TrackIndex,
    recent: RecentPlays,
    lake: LakeConsumer | None,
    tables: dict[str, PartitionedTable],
) -> None:
    sinks = {sink.dataset.name: sink for sink in lake.sinks.values()} if lake else {}
    enriched_codec = codec_for("EnrichedTrack")
    window_names = [spec.name for spec in window_specs(pipeline.settings)]

    def active() -> set[int]:
        # Of the input topics (co-partitioned); not of Faust's own, such as its leader topic.
        return app.active_partitions(topics.TRACKS.name)

    def snapshot() -> dict[str, Any]:
        stats = pipeline.stats
        rate_in, rate_out = stats.rates()
        sender = pipeline.sender
        out = sender.acked if sender else {}
        lag = []
        for tp in sorted(app.consumer.assignment()):
            # None until this worker has read the partition: unknown, not zero
            position = stats.positions.get((tp.topic, tp.partition))
            highwater = app.consumer.highwater(tp)
            known = position is not None and highwater is not None
            lag.append(
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "position": position,
                    "lag": max(0, highwater - position) if known else None,
                }
            )
        partitions = active()
        return {
            "uptime_seconds": round(stats.uptime, 1),
            "topics": {
                name: {
                    "messages_in": stats.messages_in.get(name, 0),
                    "records_in": stats.records_in.get(name, 0),
                    "messages_out": out.get(name, 0),
                    "rate_in": round(rate_in.get(name, 0.0), 1),
                    "rate_out": round(rate_out.get(name, 0.0), 1),
                    "first_at": stats.first_at.get(name),
                    "last_at": stats.last_at.get(name),
                }
                for name in sorted(set(stats.messages_in) | set(out))
            },
            "consumer_lag": lag,
            # None while unknown: no partition assigned yet, or one not read yet
            "lag_total": sum(e["lag"] for e in lag)
            if lag and all(e["lag"] is not None for e in lag)
            else None,
            "tables": {name: table.approximate_size(partitions) for name, table in tables.items()},
            "dimensions": {**dimensions.counts, "stale_versions": dimensions.stale},
            **enricher.status(),
            "dead_letters": dict(stats.dead_letters),
            "events": dict(stats.events),
            "recovery": stats.recovery,
            "lake": {
                name: sink.stats | {"held_bytes": sink.held_bytes, "pending": len(sink.pending)}
                for name, sink in sinks.items()
            },
            "lake_paused": lake is not None and lake.paused,
            "partitions": sorted(partitions),
        }

    @app.page("/pipeline/stats")
    async def pipeline_stats(web: Web, request: Request) -> Response:
        return web.json(snapshot())

    dashboard.register(
        app,
        settings=pipeline.settings,
        snapshot=snapshot,
        leaderboard=leaderboard,
        dimensions=dimensions,
        rolling_window=window_specs(pipeline.settings)[1].name,
        first_close=windows.first_close,
    )

    class _Collector:
        def collect(self) -> Any:
            snap = snapshot()
            prefix = "spotify_stream"
            for name, kind, help_ in (
                ("messages_in", CounterMetricFamily, "Messages consumed"),
                (
                    "records_in",
                    CounterMetricFamily,
                    "Records consumed (batched messages hold many)",
                ),
                ("messages_out", CounterMetricFamily, "Messages produced and acknowledged"),
            ):
                family = kind(f"{prefix}_{name}", help_, labels=["topic"])
                for topic, values in snap["topics"].items():
                    family.add_metric([topic], values[name])
                yield family
            lag = GaugeMetricFamily(
                f"{prefix}_consumer_lag", "Messages behind", labels=["topic", "partition"]
            )
            for entry in snap["consumer_lag"]:
                if entry["lag"] is not None:
                    lag.add_metric([entry["topic"], str(entry["partition"])], entry["lag"])
            yield lag
            keys = GaugeMetricFamily(f"{prefix}_table_keys", "Keys (estimate)", labels=["table"])
            for name, size in snap["tables"].items():
                keys.add_metric([name], size)
            yield keys
            dead = CounterMetricFamily(
                f"{prefix}_dead_letters", "Dead letters sent", labels=["reason"]
            )
            for reason, count in snap["dead_letters"].items():
                dead.add_metric([reason], count)
            yield dead
            events = CounterMetricFamily(f"{prefix}_events", "Pipeline events", labels=["event"])
            for name, count in snap["events"].items():
                events.add_metric([name], count)
            yield events
            for name, help_ in (
                ("files", "Parquet objects written"),
                ("rows", "Rows written to the lake"),
                ("bytes", "Bytes written to the lake"),
                ("failures", "Failed lake writes (retried)"),
                ("rejected", "Records the lake cannot hold (dead-lettered)"),
            ):
                family = CounterMetricFamily(f"{prefix}_lake_{name}", help_, labels=["dataset"])
                for dataset, values in snap["lake"].items():
                    family.add_metric([dataset], values[name])
                yield family
            for name, help_ in (
                ("flushes_by_reason", "Flushes written, by why they were cut"),
                ("failures_by_reason", "Failed lake calls (retried), by kind"),
            ):
                family = CounterMetricFamily(
                    f"{prefix}_lake_{name}", help_, labels=["dataset", "reason"]
                )
                for dataset, values in snap["lake"].items():
                    for reason, count in values[name].items():
                        family.add_metric([dataset, reason], count)
                yield family
            for name, key, help_ in (
                ("held_bytes", "held_bytes", "Message bytes held until written"),
                ("flush_seconds", "last_flush_seconds", "Duration of the last flush"),
                ("last_flush_timestamp_seconds", "last_flush_at", "Time of the last flush"),
            ):
                gauge = GaugeMetricFamily(f"{prefix}_lake_{name}", help_, labels=["dataset"])
                for dataset, values in snap["lake"].items():
                    if values[key] is not None:
                        gauge.add_metric([dataset], values[key])
                yield gauge
            yield GaugeMetricFamily(
                f"{prefix}_lake_paused",
                "1 while the sink pauses consumption (memory bound reached)",
                value=int(snap["lake_paused"]),
            )
            yield GaugeMetricFamily(
                f"{prefix}_pending_joins", "Tracks waiting", value=snap["pending_joins"]
            )
            if snap["cluster_model"] is not None:
                yield GaugeMetricFamily(
                    f"{prefix}_cluster_model_version",
                    "Newest cluster model version this worker assigns with",
                    value=snap["cluster_model"]["version"],
                )
            yield GaugeMetricFamily(
                f"{prefix}_uptime_seconds", "Worker uptime", value=snap["uptime_seconds"]
            )

    registry = CollectorRegistry()
    registry.register(_Collector())

    @app.page("/metrics")
    async def metrics(web: Web, request: Request) -> Response:
        return web.bytes(generate_latest(registry), content_type="text/plain; version=0.0.4")

    def dimension_view(kind: str) -> None:
        async def lookup(web: Web, request: Request, id_: str) -> Response:
            record = dimensions.get(kind, id_)
            if record is None:
                return error(web, 404, f"no {kind} {id_}")
            return web.json(jsonable(record))

        lookup.__name__ = f"{kind}_lookup"  # Faust names the view after it
        app.page(f"/{kind}s/{{id_}}")(lookup)

    for kind in KINDS:
        dimension_view(kind)

    enriched = tables["enriched"]

    @app.page("/tracks/{track_id}")
    @app.table_route(table=enriched.table, match_info="track_id")
    async def track(web: Web, request: Request, track_id: str) -> Response:
        key = track_id.encode()
        partition = partition_for(key, pipeline.sender.partitions[topics.TRACKS.name])
        if partition not in active():
            return error(web, 503, f"partition {partition} of {track_id} is not on this worker")
        raw = enriched.get(partition, key)
        if raw is None:
            waiting = enricher.is_waiting(track_id)
            return error(
                web,
                404,
                f"track {track_id} is waiting for dimensions"
                if waiting
                else f"no track {track_id}",
            )
        return web.json(jsonable(enriched_codec.decode(raw)))

    @app.page("/popularity/top")
    async def popularity_top(web: Web, request: Request) -> Response:
        entity = request.query.get("entity", "artist")
        window = request.query.get("window", "1h")
        if entity not in ENTITY_TYPES:
            return error(web, 400, f"entity must be one of {', '.join(ENTITY_TYPES)}")
        if window not in window_names:
            return error(web, 400, f"window must be one of {', '.join(window_names)}")
        try:
            n = count(request, MAX_TOP)
        except ValueError as exc:
            return error(web, 400, str(exc))
        top = [jsonable(r) for r in leaderboard.top(entity, window, n)]
        body = {
            "entity": entity,
            "window": window,
            "windows_known": sorted(leaderboard.windows.get(entity, ())),
            "top": top,
        }
        if not top:
            body["note"] = dashboard.window_note(window, windows.first_close(window))
        return web.json(body)

    def no_model(web: Web) -> Response:
        return error(
            web,
            503,
            "no cluster model yet (the first comes after cluster_warmup tracks with features, or once the features stream is quiet with at least cluster_k of them)",
        )

    @app.page("/tracks/{track_id}/similar")
    async def similar(web: Web, request: Request, track_id: str) -> Response:
        try:
            n = count(request, MAX_RECOMMENDED)
        except ValueError as exc:
            return error(web, 400, str(exc))
        model = enricher.models.model
        if model is None:
            return no_model(web)
        await index.read()
        try:
            tracks = index.similar(track_id, n, model)
        except NotIndexed as exc:
            return error(web, 404, str(exc))
        return web.json({"track_id": track_id, "model_version": model.version, "similar": tracks})

    user_plays = tables["user-plays"]

    @app.page("/users/{user_id}/recommendations")
    @app.table_route(table=user_plays.table, match_info="user_id")
    async def recommendations(web: Web, request: Request, user_id: str) -> Response:
        try:
            n = count(request, MAX_RECOMMENDED)
        except ValueError as exc:
            return error(web, 400, str(exc))
        partition = partition_for(user_id.encode(), pipeline.sender.partitions[topics.PLAYS.name])
        if partition not in app.active_partitions(topics.PLAYS.name):
            return error(web, 503, f"partition {partition} of {user_id} is not on this worker")
        played = recent.played(partition, user_id)
        if played is None:
            return error(web, 404, f"no plays of user {user_id}")
        model = enricher.models.model
        if model is None:
            return no_model(web)
        await index.read()
        try:
            tracks, based_on = index.recommend(played, n, model)
        except NotIndexed as exc:
            return error(web, 404, f"user {user_id}: {exc}")
        return web.json(
            {
                "user_id": user_id,
                "model_version": model.version,
                "based_on_plays": based_on,
                "recommendations": tracks,
            }
        )
