"""The Faust application: tables, agents and web views wired together.

``create_app(settings)`` builds it: ``spotify-stream worker`` from the settings
it checked, ``faust -A spotify_stream.app worker`` from the environment's (the
module's ``app``, built on first use). Agents take their topics' records a
fetch at a time (``faust_ext.bulk``) and hand them to the modules of
``agents/`` (``Pipeline.run_agent``); nothing is acknowledged whose results
are not yet in Kafka (at-least-once, which the embedded broker requires).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from spotify_stream import topics
from spotify_stream.agents import popularity
from spotify_stream.agents.clustering import ModelHolder, Trainer
from spotify_stream.agents.enrichment import Enricher
from spotify_stream.agents.pipeline import Message, Pipeline
from spotify_stream.agents.users import PlaysAgent, RecentPlays
from spotify_stream.faust_ext.broadcast import BroadcastReader
from spotify_stream.faust_ext.bulk import BulkAgent, BulkChannel
from spotify_stream.faust_ext.consumer import ConsumingApp
from spotify_stream.faust_ext.recovery import TableManager
from spotify_stream.faust_ext.worker import Worker
from spotify_stream.ml.recommend import TrackIndex
from spotify_stream.ownership import claim
from spotify_stream.security import faust_credentials
from spotify_stream.settings import Settings, get_settings
from spotify_stream.sink.consumer import LakeConsumer, lake_consumer
from spotify_stream.tables.dimensions import KINDS, DimensionStore
from spotify_stream.tables.leaderboard import Leaderboard
from spotify_stream.tables.windows import window_specs
from spotify_stream.web.dashboard import json_errors

RAW = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


class SpotifyStreamApp(ConsumingApp, faust.App):
    """Creates the topics before Faust subscribes to them (the embedded broker would
    auto-create them with its own partition count) and starts the broadcast
    reader before table recovery, whose callbacks wait for it to catch up; and
    consumes through ``consumer.Consumer``."""

    pipeline: Pipeline
    reader: BroadcastReader
    lake: LakeConsumer | None
    bulk_agents: list[BulkAgent]

    async def on_first_start(self) -> None:
        await super().on_first_start()
        await self.pipeline.start()
        # ``spotify-stream worker`` said it in one line already; ``faust -A`` stops here
        await claim(self.pipeline.settings)

    async def on_start(self) -> None:
        await super().on_start()
        await self.add_runtime_dependency(self.reader)
        for agent in self.bulk_agents:
            await self.add_runtime_dependency(agent)
        if self.lake is not None:
            await self.add_runtime_dependency(self.lake)

    async def on_stop(self) -> None:
        if self.lake is not None:  # its last flushes may dead-letter through the pipeline
            await self.lake.stop()
        await super().on_stop()
        await self.pipeline.stop()

    def active_partitions(self, topic: str) -> set[int]:
        return {tp.partition for tp in self.assignor.assigned_actives() if tp.topic == topic}


def create_app(settings: Settings) -> SpotifyStreamApp:
    app = SpotifyStreamApp(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers],
        broker_credentials=faust_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir / "faust"),
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=settings.worker_batch,
        broker_session_timeout=10,
        broker_rebalance_timeout=10,
        broker_request_timeout=max(settings.connect_timeout, 30),
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_application_options={"middlewares": [json_errors]},
        autodiscover=False,
        TableManager=TableManager,
        Worker=Worker,
    )
    pipeline = app.pipeline = Pipeline(settings)

    def table(name: str) -> Any:
        # acks=False as Faust's own changelogs: no stream consumes them, so none is awaited.
        changelog = app.topic(topics.changelog(settings.app_id, name), schema=RAW, acks=False)
        faust_table = app.Table(
            name,
            schema=RAW,
            partitions=settings.partitions,
            changelog_topic=changelog,
            options=settings.rocksdb_options(),  # a dict of its own: Faust pops keys from it
        )
        return pipeline.table(faust_table)

    features, pending, enriched, panes, user_plays = (table(name) for name in topics.TABLES)

    dimensions = DimensionStore(
        settings.data_dir / "dimensions", settings.dimension_cache, settings.rocksdb_options()
    )
    leaderboard = Leaderboard()
    models = ModelHolder()
    index = TrackIndex()
    recent = RecentPlays(user_plays, settings.recent_plays)
    enricher = Enricher(pipeline, dimensions, features, pending, enriched, models)
    windows = popularity.PopularityWindows(pipeline, panes, window_specs(settings))

    models_topic = pipeline.internal(topics.CLUSTER_MODELS)
    training_topic = pipeline.internal(topics.CLUSTER_TRAINING)
    index_topic = pipeline.internal(topics.TRACK_INDEX)

    appliers: dict[str, Callable[[bytes | None], None]] = {
        topics.POPULARITY.name: leaderboard.apply_message,
        models_topic: models.apply_message,
        index_topic: index.add_message,
        **{t.name: functools.partial(dimensions.apply_message, t.name) for t in KINDS.values()},
    }

    app.reader = BroadcastReader(
        settings,
        list(appliers),
        lambda topic, value: appliers[topic](value),
        lambda: enricher.after_broadcast(dimensions.take_changes()),
    )

    @enriched.table.on_recover
    async def _join_state_recovered() -> None:
        await app.reader.caught_up.wait()
        await enricher.sweep(app.active_partitions(topics.TRACKS.name))

    @panes.table.on_recover
    async def _panes_recovered() -> None:
        windows.recover()

    app.bulk_agents = []

    def agent(topic_names: list[str], handle: Callable[[list[Message]], Awaitable[None]]) -> None:
        # An agent that fails takes the worker down (to be restarted, and to replay
        # its unacknowledged messages) instead of restarting alone with them stuck.
        channel = BulkChannel(app, *topic_names)
        app.bulk_agents.append(BulkAgent(channel, lambda c: pipeline.run_agent(c, handle)))

    agent(
        [topics.TRACKS.name, topics.AUDIO_FEATURES.name, pipeline.internal(topics.JOIN_RETRY)],
        enricher.handle,
    )
    # The member owning a dimension partition dead-letters its bad messages.
    dimension_records = {t.name: (t.record, t.key) for t in KINDS.values()}
    agent(list(dimension_records), lambda batch: pipeline.check(batch, dimension_records))
    agent([topics.PLAYS.name], PlaysAgent(pipeline, recent).handle)
    agent(
        [pipeline.internal(topics.PLAYS_BY_TRACK)],
        lambda batch: popularity.attribute_plays(pipeline, enriched, batch),
    )
    agent([pipeline.internal(topics.CONTRIBUTIONS)], windows.handle)

    trainer = Trainer(
        pipeline,
        models,
        app.reader.caught_up,
        # the consumer's own assignment: Faust's assignor lists no actives for this topic
        lambda: any(tp.topic == training_topic for tp in app.consumer.assignment()),
    )

    agent([training_topic], trainer.handle)

    @app.timer(settings.cluster_publish_seconds)
    async def publish_clusters() -> None:
        await trainer.tick()

    @app.timer(max(0.5, min(settings.join_max_wait / 4, 5.0)))
    async def expire_joins() -> None:
        await enricher.expire()

    app.lake = lake_consumer(settings, pipeline) if settings.lake_sink else None

    @app.timer(1.0)
    async def sample_rates() -> None:
        pipeline.stats.sample(pipeline.sender.acked)

    from spotify_stream.web import views

    views.register(
        app,
        pipeline=pipeline,
        dimensions=dimensions,
        enricher=enricher,
        leaderboard=leaderboard,
        windows=windows,
        index=index,
        recent=recent,
        lake=app.lake,
        tables={
            "features": features,
            "pending-joins": pending,
            "enriched": enriched,
            "popularity-panes": panes,
            "user-plays": user_plays,
        },
    )
    return app


def __getattr__(name: str) -> Any:
    """``app``: built on first use from the environment's settings, for ``faust -A
    spotify_stream.app``. (``spotify-stream worker`` builds its own with
    ``create_app``; importing this module builds nothing.)"""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()["app"] = built = create_app(get_settings())
    return built


__all__ = ["create_app"]
