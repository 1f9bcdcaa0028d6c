"""Failover: three worker processes share the partitions; one is killed with SIGKILL
mid-run; the other two take its partitions over. The lake ends with exactly the input
rows (the lake crash test's check), the enriched tracks are the reference join, no
offset goes undelivered, and all of it takes at most twice the time one worker takes
for the same input on the same machine (both timed from the first record produced).

Before ``consumer.Consumer``, one run in three on a busy machine lost the first
offsets of a partition taken over (tracks never joined)."""

from __future__ import annotations

import signal
import time

import pytest

from spotify_stream import topics
from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from spotify_stream.settings import Settings
from tests.agents.test_enrichment_e2e import enriched_by_key
from tests.agents.test_lake_crash import lake_files, simulate_in_background
from tests.agents.test_workers_e2e import assert_equals_reference, produce_in_background
from tests.conftest import GENERATED_TRACKS, pipeline_settings
from tests.lake import differences, topic_records
from tests.reference import reference_enriched

pytestmark = pytest.mark.slow


def owned(workers: list[WorkerProcess]) -> list[set[int]]:
    return [set(w.get("/pipeline/stats")["partitions"]) for w in workers]


def shared(workers: list[WorkerProcess], partitions: int) -> bool:
    parts = owned(workers)
    return all(parts) and sum(map(len, parts)) == partitions == len(set().union(*parts))


def unfinished(settings: Settings, workers: list[WorkerProcess]) -> list[str]:
    """What is not yet done: every track enriched and labelled, the lake equal to the
    topics (empty when all is). Not the workers' pending joins: a track whose join state
    the new owner finds behind what was already emitted is held back, and may stay
    counted as pending though its output is complete (seen once in ten runs)."""
    left = []
    for worker in workers:
        stats = worker.get("/pipeline/stats")
        if stats["cluster_model"] is None:
            left.append(f"{worker.log.stem}: no cluster model")
        if stats["unlabelled_tracks"]:
            left.append(f"{worker.log.stem}: {stats['unlabelled_tracks']} unlabelled tracks")
    enriched = {r["track_id"] for r in topic_records(settings, topics.ENRICHED)}
    if len(enriched) != GENERATED_TRACKS:
        left.append(f"{len(enriched)} of {GENERATED_TRACKS} tracks enriched")
    return left + [f"{k}: {v}" for k, v in differences(settings).items()]


def logs(workers: list[WorkerProcess]) -> str:
    return "\n".join(f"--- {w.log.stem}\n{w.tail(15)}" for w in workers)


def run(settings: Settings, generated, halves, workdir, workers: int, kill: bool) -> float:
    """Seconds from the first record produced to a lake equal to the input; checks the
    enriched tracks against the reference and that every offset was delivered."""
    started = [WorkerProcess(settings, workdir, f"w{i}").start() for i in range(workers)]
    try:
        assert wait_for(lambda: shared(started, settings.partitions), 90), logs(started)
        began = time.monotonic()
        producing = produce_in_background(settings, halves, rate=1500)
        assert wait_for(lambda: topic_records(settings, topics.TRACKS), 60)
        playing = simulate_in_background(settings, 20)
        alive = started
        if kill:
            victim = started[0]
            assert wait_for(lambda: lake_files(victim) > 0, 60)  # writing when it dies
            victim.stop(signal.SIGKILL)
            alive = started[1:]
            assert wait_for(lambda: shared(alive, settings.partitions), 90), logs(alive)
        producing.join()
        playing.join()
        done = wait_for(lambda: not unfinished(settings, alive), 300, interval=2)
        assert done, f"{unfinished(settings, alive)}\n{logs(alive)}"
        seconds = time.monotonic() - began
        skipped = {
            w.log.stem: w.get("/pipeline/stats")["events"].get("offsets_skipped") for w in alive
        }
        assert not any(skipped.values()), skipped
        assert_equals_reference(enriched_by_key(settings), reference_enriched(generated))
        return seconds
    finally:
        for worker in started:
            worker.stop()


def test_two_of_three_workers_finish_the_work_of_a_killed_one(
    generated, generated_halves, tmp_path
):
    seconds = {}
    for name, workers, kill in (("one worker", 1, False), ("three, one killed", 3, True)):
        with EmbeddedBroker() as broker:
            settings = pipeline_settings(
                broker,
                tmp_path / name,
                partitions=6,
                join_max_wait=120,  # no track expires while partitions move
            )
            seconds[name] = run(
                settings, generated, generated_halves, tmp_path / name, workers, kill
            )
    print(f"lake equal to the input after: {seconds}")
    assert seconds["three, one killed"] <= 2 * seconds["one worker"], seconds
