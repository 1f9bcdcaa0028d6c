"""The one trainer of the track clustering, and the model every worker assigns with.

The enricher forwards to ``<app_id>-cluster-training`` the packed feature
vectors of tracks whose audio features arrived or changed (key ``vectors``),
and every track whose features joined or changed (its enriched body, in Batch
messages). That topic has one partition, so Faust gives it to one worker of
the group: exactly one trainer learns from the vectors
(``ml.clustering.OnlineClusterer``, mini-batches of ``cluster_batch`` rows) and
keeps the tracks for the profiles. Learning from the features as they arrive,
not from the tracks emitted, has the model ready soon after the features of
a catalog, which ``produce`` sends before its tracks: tracks that come before
the first model wait for it (``Enricher._awaits_model``). A catalog smaller
than the warm-up gets its first model once no vectors came for a publishing
interval. It publishes a version at most every ``cluster_publish_seconds``,
when the model learned or new tracks reached the book, to
``<app_id>-cluster-models`` (one partition, every version kept), and with it
the profile of each cluster of that version to ``spotify.clusters``, which
the lake sink lands as the ``clusters`` dataset.

Every worker's broadcast reader reads the models topic into ``ModelHolder``:
the enricher assigns with its newest version. A trainer that starts, or takes
the partition over after a crash, first waits for that reader, then resumes
from the newest version: versions continue, they never restart at 1. What a
crashed trainer had learned since its last published version is lost to the
model (its input offsets were acknowledged): at most ``cluster_publish_seconds``
of rows, a small perturbation of an estimate, not a gap in any output.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

import numpy as np

from spotify_stream import topics
from spotify_stream.agents.pipeline import Message, Pipeline
from spotify_stream.kafka import read_topic
from spotify_stream.ml.clustering import FEATURES, VECTOR, ClusterModel, OnlineClusterer
from spotify_stream.ml.profiles import COLUMNS, TrackBook, training_rows
from spotify_stream.ml.recommend import index_messages, index_table
from spotify_stream.models import codec_for
from spotify_stream.models.codec import DecodeError, items_in
from spotify_stream.models.deadletters import Reason

log = logging.getLogger(__name__)

MODEL_KEY = b"model"


def _no_rows() -> np.ndarray:
    return np.empty((0, len(FEATURES)))


class ModelHolder:
    """The newest published model version (None before the first)."""

    def __init__(self) -> None:
        self.model: ClusterModel | None = None
        self._codec = codec_for("ClusterModel")

    def apply_message(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            model = ClusterModel.from_record(self._codec.decode(value))
        except (DecodeError, ValueError) as exc:  # only the trainer writes here
            log.warning("skipping an unreadable cluster model: %s", exc)
            return
        if self.model is None or model.version > self.model.version:
            self.model = model


class Trainer:
    def __init__(
        self,
        pipeline: Pipeline,
        holder: ModelHolder,
        ready: asyncio.Event,
        owns_training: Callable[[], bool],
    ) -> None:
        self.pipeline = pipeline
        self.holder = holder
        self.ready = ready  # set once the broadcast reader has caught up
        self.owns_training = owns_training
        self.models_topic = pipeline.internal(topics.CLUSTER_MODELS)
        self.index_topic = pipeline.internal(topics.TRACK_INDEX)
        self.clusterer: OnlineClusterer | None = None
        self.book = TrackBook()
        self._rows = _no_rows()  # feature rows not yet learned
        self._changed = False  # the model learned since the last version
        self._booked = False  # tracks reached the book since the last version
        self._published = 0.0  # monotonic time of the last version
        self._rows_at = 0.0  # monotonic time of the last vectors read
        self._lock = asyncio.Lock()
        self._model_codec = codec_for("ClusterModel")
        self._profile_codec = codec_for(topics.CLUSTERS.record)

    async def handle(self, messages: Iterable[Message]) -> None:
        async with self._lock:
            await self._start()
            messages = list(messages)
            # Off the loop (polars' decoding and numpy release the GIL): the trainer's
            # worker also enriches, and this took a tenth of its loop.
            outcomes, index = await asyncio.to_thread(
                self._learn, [(m.key, m.value) for m in messages]
            )
            for value in index:
                await self.pipeline.send(self.index_topic, None, value)
            for message, outcome in zip(messages, outcomes, strict=True):
                rows = outcome if isinstance(outcome, int) else 0
                self.pipeline.stats.consumed(message.topic, message.partition, message.offset, rows)
                if isinstance(outcome, DecodeError):
                    self.pipeline.dead_letter(message, Reason.UNDECODABLE, str(outcome))
            await self._publish_if_due()

    def _learn(
        self, messages: list[tuple[bytes | None, bytes | None]]
    ) -> tuple[list[int | DecodeError], list[bytes]]:
        """Read the messages' rows (their count, or why one is unreadable): vectors to
        learn from, enriched tracks for the book and the index; fit the whole
        mini-batches. Returns the outcomes and the index messages to send."""
        outcomes: list[int | DecodeError] = []
        index: list[bytes] = []
        for key, value in messages:
            value = value or b""
            if key == topics.TRAINING_VECTORS_KEY:
                if len(value) % VECTOR.size:
                    outcomes.append(DecodeError(f"{len(value)} bytes are not packed vectors"))
                    continue
                vectors = np.frombuffer(value, dtype="<f8").reshape(-1, len(FEATURES))
                self._rows = np.concatenate([self._rows, vectors])
                self._rows_at = time.monotonic()
                outcomes.append(len(vectors))
                continue
            try:
                table = training_rows(items_in(value))
            except DecodeError as exc:
                outcomes.append(exc)
                continue
            outcomes.append(table.num_rows)
            if table.num_rows:
                self.book.add(table)
                self._booked = True
                index += index_messages(table)
        batch = self.pipeline.settings.cluster_batch
        while len(self._rows) >= batch:
            self._fit(batch)
        return outcomes, index

    async def tick(self) -> None:
        """Learn what is left of a quiet stream and publish it (a catalog smaller than the
        warm-up gets its first model once no vectors came for a publishing interval);
        forget the model when the training partition went to another worker (its
        trainer resumes from the topic)."""
        async with self._lock:
            if self.clusterer is None:
                return
            if not self.owns_training():
                self.clusterer, self.book, self._rows = None, TrackBook(), _no_rows()
                return
            if len(self._rows):
                await asyncio.to_thread(self._fit, len(self._rows))
            if self._quiet() and await asyncio.to_thread(self.clusterer.start):
                self._changed = True
                log.info(
                    "cluster trainer: a first model from %d rows, fewer than the warm-up "
                    "(no features came for a publishing interval)",
                    self.clusterer.rows_seen,
                )
            await self._publish_if_due()

    def _quiet(self) -> bool:
        """No model yet, rows waiting for it, and no vectors for a publishing interval."""
        assert self.clusterer is not None
        interval = self.pipeline.settings.cluster_publish_seconds
        return (
            not self.clusterer.fitted
            and self.clusterer.waiting > 0
            and time.monotonic() - self._rows_at >= interval
        )

    async def _start(self) -> None:
        if self.clusterer is not None:
            return
        await self.ready.wait()
        settings = self.pipeline.settings
        latest = self.holder.model
        # in a thread: the first one imports scikit-learn (1 s the loop would stand still)
        if latest is None:
            self.clusterer = await asyncio.to_thread(
                OnlineClusterer, settings.cluster_k, settings.cluster_warmup
            )
        else:
            self.clusterer = await asyncio.to_thread(
                OnlineClusterer.resume, latest, settings.cluster_warmup
            )
            log.info("cluster trainer resumes from version %d", latest.version)
        await self._rebuild_book()

    async def _rebuild_book(self) -> None:
        """The tracks sent to earlier trainers, from the index topic (kept forever, one
        row per track as it was learned): the profiles of this trainer's versions cover
        them too, not only the tracks sent to it since it started."""
        tracks = 0
        async for message in read_topic(self.pipeline.settings, self.index_topic):
            table = await asyncio.to_thread(index_table, message.value or b"")
            if table is not None and set(COLUMNS) <= set(table.column_names):
                self.book.add(table)
                tracks += table.num_rows
        if tracks:
            log.info("cluster trainer: %d track rows of earlier versions in its book", tracks)

    def _fit(self, rows: int) -> None:
        assert self.clusterer is not None
        batch, self._rows = self._rows[:rows], self._rows[rows:]
        if self.clusterer.partial_fit(batch):
            self._changed = True

    async def _publish_if_due(self) -> None:
        """A new version when the model learned, or when tracks reached the book (its
        profiles would change: tracks held for the first model reach the book only once
        it is published), at most every ``cluster_publish_seconds``."""
        assert self.clusterer is not None
        due = time.monotonic() - self._published >= self.pipeline.settings.cluster_publish_seconds
        if not (due and (self._changed or (self._booked and self.clusterer.fitted))):
            return
        model = self.clusterer.snapshot()
        published_at = int(time.time() * 1000)
        record = model.to_record() | {"published_at": published_at}
        await self.pipeline.send(self.models_topic, MODEL_KEY, self._model_codec.encode(record))
        # Off the loop; the lock keeps the book still meanwhile.
        profiles = await asyncio.to_thread(self.book.profiles, model, published_at)
        for profile in profiles:
            key = f"{model.version}:{profile['cluster_id']}".encode()
            await self.pipeline.send(topics.CLUSTERS.name, key, self._profile_codec.encode(profile))
        await self.pipeline.commit_point()
        self.holder.model = model  # the broadcast reader brings it too; assign with it now
        self._changed, self._booked, self._published = False, False, time.monotonic()
        self.pipeline.stats.events["model_versions"] += 1
        sizes = [p["size"] for p in profiles]
        # a level, not a count: the labelled tracks the newest version's profiles cover
        self.pipeline.stats.events["profiled_tracks"] = sum(sizes)
        log.info(
            "cluster model version %d: %d rows learned, cluster sizes %s",
            model.version,
            model.rows_seen,
            sizes,
        )
