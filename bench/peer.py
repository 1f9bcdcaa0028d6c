"""The peer: the benches' jobs done by Quix Streams, in a process of its own.

    python -m bench.peer tracks|plays BOOTSTRAP STATE_DIR --records N [--lake DIR] [--preload]

``tracks`` (bench pipeline): ``--preload`` reads the audio-features topic into
the as-of join's store and stops once the topic is quiet (the worker's
features table is filled before it is timed too). Without it, every track is
joined with its features (Quix Streams' ``join_asof``, the same key and
partitions as the worker's join) and with its album and artist (read from
their topics into memory before the clock starts: Quix Streams has no
broadcast table); the enriched record is the worker's ``EnrichedTrack``,
encoded with the project's codec, to an output topic of its own, or
(``--lake``) written by Quix Streams' Parquet file sink. Cluster assignment is
left out (the worker does it): the peer does less.

``plays`` (bench plays): plays repartitioned by track and counted in hourly
tumbling windows (to an output topic), and written to the Parquet sink
(``--lake``). The worker also keeps each user's recent plays, counts artists,
albums and genres too, and deduplicates replays: the peer does less.

Prints one JSON line: the times of the first and last record read, of the
sink's write that held the last (``--lake``), and the process's CPU seconds
from the first record and peak RSS. Needs the ``bench`` extra
(``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import threading
import time
from typing import Any

from quixstreams import Application
from quixstreams.models.serializers import Deserializer, Serializer
from quixstreams.sinks import SinkBatch
from quixstreams.sinks.community.file.local import LocalFileSink

from spotify_stream import topics
from spotify_stream.agents.enrichment.assembly import ALBUM_FIELDS, ARTIST_FIELDS, features_part
from spotify_stream.kafka import read_topic
from spotify_stream.models import codec_for
from spotify_stream.models.codec import records_in
from spotify_stream.settings import Settings

OUTPUT = "peer.tracks.enriched"


class AvroValue(Deserializer):
    """One single-object-encoded record per message, as the worker reads it."""

    def __init__(self, record: str) -> None:
        super().__init__()
        self.codec = codec_for(record)

    def __call__(self, value: bytes, ctx: Any) -> dict:
        return self.codec.decode(value, as_written=True)  # JSON in the state store: no datetimes


class AvroEnriched(Serializer):
    def __init__(self) -> None:
        self.codec = codec_for(topics.ENRICHED.record)

    def __call__(self, value: dict, ctx: Any) -> bytes:
        return self.codec.encode(value)


async def dimensions(settings: Settings, topic: topics.Topic) -> dict[str, dict]:
    rows = {}
    async for message in read_topic(settings, topic.name):
        for _, record in records_in(message.value):
            rows[record[topic.key]] = record
    return rows


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """When the first and last record went through, and when the sink wrote the last;
    at the end, the figures on stdout and the process gone (Quix Streams' consumer
    can stay in ``close`` on the embedded broker: nothing is left to wait for)."""

    def __init__(self, app: Application, records: int, lake: bool) -> None:
        self.app, self.records, self.lake = app, records, lake
        self.seen = self.written = 0
        self.sink: Any = None  # the dataframe whose records go into the lake (--lake)
        self.first_at = self.last_at = self.landed_at = self.cpu_at_first = 0.0

    def record(self, *_: Any) -> None:
        self.seen += 1
        if self.seen == 1:
            self.first_at = time.time()
            self.cpu_at_first = cpu_seconds()
        if self.seen == self.records:
            self.last_at = time.time()
            if not self.lake:
                self.done()

    def wrote(self, rows: int) -> None:
        self.written += rows
        if self.written >= self.records and not self.landed_at:
            self.landed_at = time.time()
            self.done()

    def done(self) -> None:
        figures = {
            "first_at": self.first_at,
            "last_at": self.last_at,
            "landed_at": self.landed_at,
            "cpu_seconds": cpu_seconds() - self.cpu_at_first,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        print(json.dumps(figures), flush=True)
        self.app.stop()
        threading.Timer(10, os._exit, (0,)).start()


class TimedFileSink(LocalFileSink):
    def __init__(self, clock: Clock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock

    def write(self, batch: SinkBatch) -> None:
        super().write(batch)
        self.clock.wrote(batch.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=("tracks", "plays"))
    parser.add_argument("bootstrap")
    parser.add_argument("state_dir")
    parser.add_argument("--records", type=int, required=True, help="tracks or plays to wait for")
    parser.add_argument("--lake", help="a directory: the job's output into Parquet there")
    parser.add_argument("--preload", action="store_true")
    args = parser.parse_args()
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=f"peer-{args.job}",
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        commit_interval=1.0,  # the worker's lake window in the bench
        # The store stays on local disk without a changelog topic: restarted, Quix Streams
        # finds the embedded broker's end offset (its last batch's base offset + 1)
        # behind the stored changelog offset and stops in its rebalance callback.
        use_changelog_topics=False,
        loglevel=os.environ.get("PEER_LOGLEVEL", "WARNING"),
    )
    clock = Clock(app, args.records, bool(args.lake))

    def topic(name: str, record: str) -> Any:
        topic = app.topic(name, key_deserializer="bytes", value_deserializer=AvroValue(record))
        # the embedded broker describes no retention; the stores derive their own from it
        topic.broker_config.extra_config.setdefault("retention.ms", "-1")
        return topic

    if args.job == "tracks":
        tracks_job(app, clock, topic, Settings(broker=f"kafka://{args.bootstrap}", _env_file=None))
    else:
        plays_job(app, clock, topic)
    if args.lake:
        clock.sink.sink(TimedFileSink(clock, directory=args.lake, format="parquet"))
    if args.preload:  # no tracks yet: the features into the join's store
        app.run(timeout=5)
        return
    app.run()


def tracks_job(app: Application, clock: Clock, topic: Any, settings: Settings) -> None:
    """Tracks joined as-of with their features, album and artist from memory."""
    albums = asyncio.run(dimensions(settings, topics.ALBUMS))
    artists = asyncio.run(dimensions(settings, topics.ARTISTS))

    def enrich(track: dict, features: dict | None) -> dict:
        clock.record()
        album = albums.get(track["album_id"])
        artist = artists.get(track["artist_id"])
        missing = [
            name
            for name, part in (("album", album), ("artist", artist), ("features", features))
            if part is None
        ]
        enriched = dict(track)
        for field, source in ALBUM_FIELDS.items():
            enriched[field] = album.get(source) if album else None
        for field, source in ARTIST_FIELDS.items():
            enriched[field] = artist.get(source) if artist else None
        if features is not None:
            enriched |= features_part(features)
        enriched |= {
            "complete": not missing,
            "missing": missing,
            "cluster_id": None,
            "model_version": None,
            "cluster_distance": None,
        }
        return enriched

    features = app.dataframe(topic(topics.AUDIO_FEATURES.name, topics.AUDIO_FEATURES.record))
    tracks = app.dataframe(topic(topics.TRACKS.name, topics.TRACKS.record))
    clock.sink = tracks.join_asof(features, how="left", on_merge=enrich)
    if not clock.lake:
        output = app.topic(OUTPUT, key_serializer="bytes", value_serializer=AvroEnriched())
        clock.sink.to_topic(output)


def plays_job(app: Application, clock: Clock, topic: Any) -> None:
    """Plays counted per track in hourly tumbling windows (repartitioned by track), and
    the plays themselves into the lake."""
    plays = app.dataframe(topic(topics.PLAYS.name, topics.PLAYS.record)).update(clock.record)
    counts = plays.group_by("track_id").tumbling_window(3_600_000).count().final()
    counts.to_topic(app.topic("peer.popularity", value_serializer="json"))
    clock.sink = plays


if __name__ == "__main__":
    main()
