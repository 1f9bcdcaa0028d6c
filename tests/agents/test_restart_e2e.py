"""A restarted worker resumes from its stores: it reads no changelog, and its state is whole."""

from __future__ import annotations

import asyncio

import pytest

from spotify_stream import topics
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from tests.conftest import GENERATED_TRACKS, consume_all, produce_both_forms

pytestmark = pytest.mark.slow


def changelog_records(settings) -> int:
    return sum(
        len(asyncio.run(consume_all(settings, topics.changelog(settings.app_id, name))))
        for name in topics.TABLES
    )


def settled(worker: WorkerProcess) -> dict | None:
    """The worker's stats once every track it was sent is emitted and labelled."""
    stats = worker.get("/pipeline/stats")
    tracks = stats["topics"].get(topics.TRACKS.name, {}).get("records_in", 0)
    done = (
        tracks == GENERATED_TRACKS
        and stats["pending_joins"] == 0
        and stats["unlabelled_tracks"] == 0
        and stats["recovery"].get("seconds") is not None
    )
    return stats if done else None


def test_a_restarted_worker_reads_only_the_changelog_tail_and_keeps_its_state(
    fresh_settings, generated_halves, tmp_path
):
    settings = fresh_settings.model_copy(update={"join_max_wait": 3})
    produce_both_forms(settings, generated_halves)
    with WorkerProcess(settings, tmp_path) as worker:
        first = wait_for(lambda: settled(worker), 120)
        assert first, worker.tail()
    written = changelog_records(settings)
    assert first["recovery"]["changelog_records"] == 0  # a new worker: nothing to read
    assert first["events"]["emitted"] == GENERATED_TRACKS
    assert written >= 2 * GENERATED_TRACKS  # features and enriched, at least

    # The same state directory: each store holds the changelog offset its data covers.
    produce_both_forms(settings, generated_halves)  # every record again
    with WorkerProcess(settings, tmp_path) as worker:
        again = wait_for(lambda: settled(worker), 120)
        assert again, worker.tail()
    assert again["recovery"]["changelog_records"] == 0, (again["recovery"], written)
    # The state is whole: every track joined at once with the features stored before
    # the restart, and emitted nothing new (the enriched table holds what was emitted).
    assert not {"emitted", "re-emitted", "held_back"} & set(again["events"]), again["events"]
    assert again["dead_letters"] == {}
