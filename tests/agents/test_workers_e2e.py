"""Worker restarts and scale-out: the output stays the reference join, nothing lost or changed."""

from __future__ import annotations

import signal
import threading

import pytest

from spotify_stream import topics
from spotify_stream.embedded.worker import WorkerProcess, wait_for
from tests.agents.test_enrichment_e2e import NOT_IN_REFERENCE, enriched_by_key, unclustered
from tests.conftest import GENERATED_TRACKS, input_forms, produce_both_forms
from tests.reference import reference_enriched

pytestmark = pytest.mark.slow


def assert_equals_reference(got: dict[str, list[dict]], expected: dict[str, dict]) -> int:
    """Every track once in content; returns how many identical repeats at-least-once made."""
    assert got.keys() == expected.keys()
    repeats = 0
    for track_id, versions in got.items():
        for v in versions[1:]:
            diff = {k: (versions[0][k], v[k]) for k in unclustered(v) if v[k] != versions[0][k]}
            assert not diff, f"{track_id} emitted with different content: {diff}"
        repeats += len(versions) - 1
        record = {k: v for k, v in versions[0].items() if k not in NOT_IN_REFERENCE}
        assert record == expected[track_id], track_id
    return repeats


def produce_in_background(settings, halves, rate: int = 2500) -> threading.Thread:
    """``produce_both_forms`` at ``rate`` records a second, in a thread."""
    thread = threading.Thread(
        target=lambda: produce_both_forms(settings, halves, rate=rate), daemon=True
    )
    thread.start()
    return thread


def split(a: WorkerProcess, b: WorkerProcess) -> bool:
    parts = [set(w.get("/pipeline/stats")["partitions"]) for w in (a, b)]
    return all(parts) and not parts[0] & parts[1] and parts[0] | parts[1] == {0, 1, 2, 3}


def test_a_killed_worker_is_replaced_without_loss_or_change(
    fresh_settings, generated, generated_halves, tmp_path
):
    # The max wait is wall-clock time since a track arrived, restarts included: long
    # enough here that no track expires while the replacement joins the group.
    settings = fresh_settings.model_copy(update={"join_max_wait": 120})
    expected = reference_enriched(generated)
    # slow enough that the tracks come over seconds: the kill falls among them
    producing = produce_in_background(settings, generated_halves, rate=1000)
    first = WorkerProcess(settings, tmp_path, "first").start()
    consumed: list[int] = []

    def midway() -> bool:  # tracks read (some held for the first cluster model)
        consumed.append(first.topic_stats(topics.TRACKS.name).get("records_in", 0))
        return consumed[-1] > 300

    assert wait_for(midway, 60)
    first.stop(signal.SIGKILL)
    partial = len(enriched_by_key(settings))

    # A new worker with an empty state directory: every table comes back from its changelog.
    with WorkerProcess(settings, tmp_path, "second") as second:
        producing.join(60)
        got = wait_for(lambda: len(e := enriched_by_key(settings)) == GENERATED_TRACKS and e, 120)
        stats = second.get("/pipeline/stats")
    assert consumed[-1] < GENERATED_TRACKS, "the kill happened mid-run"
    repeats = assert_equals_reference(got, expected)
    print(
        f"killed after {consumed[-1]} tracks read, {partial} enriched; "
        f"{repeats} identical repeats after restart"
    )
    assert stats["pending_joins"] == 0
    assert all(input_forms(settings, topics.TRACKS).values())


def test_two_workers_split_partitions_and_match_one(
    fresh_settings, generated, generated_halves, tmp_path
):
    settings = fresh_settings.model_copy(update={"join_max_wait": 5})
    expected = reference_enriched(generated)
    with WorkerProcess(settings, tmp_path, "a") as a, WorkerProcess(settings, tmp_path, "b") as b:
        assert wait_for(lambda: split(a, b), 60), "the group never split the partitions"
        produce_both_forms(settings, generated_halves)
        got = wait_for(lambda: len(e := enriched_by_key(settings)) == GENERATED_TRACKS and e, 120)
        stats = [w.get("/pipeline/stats") for w in (a, b)]
        # Either worker answers for any track: Faust routes to the partition's owner.
        sample = sorted(got)[:12]
        lookups = {(w.url, t): w.get(f"/tracks/{t}")["track_id"] for w in (a, b) for t in sample}
    assert set(lookups.values()) == set(sample) and len(lookups) == 24
    assert_equals_reference(got, expected)
    records = [s["topics"][topics.TRACKS.name]["records_in"] for s in stats]
    assert all(records) and sum(records) == GENERATED_TRACKS


def test_a_worker_joining_mid_stream_loses_nothing(
    fresh_settings, generated, generated_halves, tmp_path
):
    # The rebalance clears the first worker's queues while partitions are half read,
    # some of them never committed: each must be read again from where the group stood.
    settings = fresh_settings.model_copy(update={"join_max_wait": 120})
    expected = reference_enriched(generated)
    # slow enough that the second worker's start and the rebalance (10 s and more on a
    # busy machine) fall inside the run
    producing = produce_in_background(settings, generated_halves, rate=400)
    with WorkerProcess(settings, tmp_path, "a") as a:
        assert wait_for(lambda: len(enriched_by_key(settings)) > 300, 60)
        with WorkerProcess(settings, tmp_path, "b") as b:
            assert wait_for(lambda: split(a, b), 60), "the group never split the partitions"
            settled_at = len(enriched_by_key(settings))
            producing.join(120)
            got = wait_for(
                lambda: len(e := enriched_by_key(settings)) == GENERATED_TRACKS and e, 120
            )
            stats = [w.get("/pipeline/stats") for w in (a, b)]
    assert settled_at < GENERATED_TRACKS, "the second worker joined mid-run"
    assert_equals_reference(got, expected)
    assert [s["events"].get("offsets_skipped", 0) for s in stats] == [0, 0]
