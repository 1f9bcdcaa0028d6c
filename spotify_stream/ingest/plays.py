"""Simulated listening: users in sessions, tracks chosen by popularity, skips.

The catalog comes from ``spotify.tracks`` itself (read from the beginning, all
partitions, outside any consumer group), so plays only name tracks the pipeline
has seen.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import numpy as np
from aiokafka.errors import KafkaError

from spotify_stream import topics
from spotify_stream.errors import BrokerUnavailable, UserError
from spotify_stream.kafka import ensure_topics, read_topic, start_producer
from spotify_stream.models import DecodeError, codec_for
from spotify_stream.settings import Settings

Catalog = list[tuple[str, int, int]]  # track_id, popularity, duration_ms


class PlaySimulator:
    """Deterministic for a seed: the same catalog, users and seed give the same plays."""

    def __init__(
        self, catalog: Catalog, users: int, seed: int | None = None, favourite_share: float = 0.3
    ) -> None:
        if not catalog:
            raise ValueError("empty catalog")
        self.rng = np.random.default_rng(seed)
        self.track_ids = [t[0] for t in catalog]
        popularity = np.array([t[1] for t in catalog], dtype=float)
        self.popularity = popularity
        self.durations = np.array([t[2] for t in catalog], dtype=float)
        weights = (popularity + 1.0) ** 2  # popular tracks are streamed far more often
        self.cumulative = np.cumsum(weights / weights.sum())
        self.users = [f"user-{i:06d}" for i in range(users)]
        activity = 1.0 / np.arange(1, users + 1) ** 0.8  # a few heavy listeners, a long tail
        self.user_cumulative = np.cumsum(activity / activity.sum())
        self.favourites = {u: self._popular(20) for u in self.users}
        self.favourite_share = favourite_share
        self.sessions: dict[str, str] = {}

    def _popular(self, n: int) -> np.ndarray:
        picks = np.searchsorted(self.cumulative, self.rng.random(n), side="right")
        return np.minimum(picks, len(self.track_ids) - 1)

    def _session(self, user: str) -> str:
        session = self.sessions.get(user)
        if session is None or self.rng.random() < 0.15:
            session = self.sessions[user] = uuid.UUID(
                int=int(self.rng.integers(0, 2**63)) << 64 | int(self.rng.integers(0, 2**63))
            ).hex
        return session

    def play(self, played_at_ms: int) -> dict[str, Any]:
        rng = self.rng
        u = min(
            int(np.searchsorted(self.user_cumulative, rng.random(), side="right")),
            len(self.users) - 1,
        )
        user = self.users[u]
        if rng.random() < self.favourite_share:
            index = int(rng.choice(self.favourites[user]))
        else:
            index = int(self._popular(1)[0])
        duration = self.durations[index] or 200_000.0
        skip_chance = 0.35 - 0.25 * self.popularity[index] / 100.0
        skipped = bool(rng.random() < skip_chance)
        if skipped:
            ms_played = int(rng.uniform(2_000, min(30_000, duration)))
        else:
            ms_played = int(duration * rng.uniform(0.8, 1.0))
        return {
            "user_id": user,
            "track_id": self.track_ids[index],
            "played_at": played_at_ms,
            "ms_played": ms_played,
            "skipped": skipped,
            "session_id": self._session(user),
        }


async def load_catalog(settings: Settings) -> Catalog:
    """Every track in ``spotify.tracks`` (latest version per id) up to the current end."""
    codec = codec_for(topics.TRACKS.record)
    tracks: dict[str, tuple[str, int, int]] = {}
    async for message in read_topic(settings, topics.TRACKS.name):
        try:
            track = codec.decode(message.value)
        except DecodeError:
            continue  # not ours to judge here; the stream core dead-letters it
        tracks[track["track_id"]] = (
            track["track_id"],
            track["popularity"] or 0,
            track["duration_ms"] or 0,
        )
    return list(tracks.values())


async def run_simulation(
    settings: Settings,
    *,
    rate: float,
    users: int,
    duration: float,
    seed: int | None,
    stop: asyncio.Event,
    backfill: float = 0.0,
    backfill_plays: int = 0,
) -> int:
    """Send ``backfill_plays`` plays whose event times are spread, in order, over the
    ``backfill`` seconds before now (as fast as Kafka takes them: closed popularity
    windows without waiting for one to pass), then plays at ``rate`` per second for
    ``duration`` seconds; returns the plays sent."""
    catalog = await load_catalog(settings)
    if not catalog:
        raise UserError("spotify.tracks is empty; run `spotify-stream produce` first")
    simulator = PlaySimulator(catalog, users, seed)
    await ensure_topics(settings, [topics.PLAYS.name])
    producer = await start_producer(settings)
    codec = codec_for(topics.PLAYS.record)
    sent = 0

    async def send(played_at_ms: int, sent_at_ms: int) -> None:
        nonlocal sent
        play = simulator.play(played_at_ms)
        await producer.send(
            topics.PLAYS.name,
            codec.encode(play),
            key=play["user_id"].encode(),
            timestamp_ms=sent_at_ms,
        )
        sent += 1

    try:
        if backfill > 0 and backfill_plays > 0:
            now_ms = int(time.time() * 1000)
            start_ms, step_ms = now_ms - int(backfill * 1000), backfill * 1000 / backfill_plays
            for i in range(backfill_plays):  # played in the past, sent now
                if stop.is_set():
                    break
                await send(start_ms + int(i * step_ms), now_ms)
        started = time.monotonic()
        backfilled = sent
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if elapsed >= duration:
                break
            due = min(int(elapsed * rate) + 1, int(duration * rate)) - (sent - backfilled)
            now_ms = int(time.time() * 1000)
            for _ in range(max(due, 0)):
                await send(now_ms, now_ms)
            await asyncio.sleep(min(0.05, max(0.0, duration - elapsed)))
        await producer.flush()
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka failed while sending plays: {exc}") from None
    finally:
        await producer.stop()
    return sent
