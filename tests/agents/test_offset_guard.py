"""The guard against offsets the consumer skipped, without a broker."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from spotify_stream.agents.pipeline import OffsetGuard


def events(*offsets: int, partition: int = 0) -> list:
    tp = TP("t", partition)
    return [SimpleNamespace(message=SimpleNamespace(tp=tp, offset=o)) for o in offsets]


def offsets(batch: list) -> list[int]:
    return [e.message.offset for e in batch]


def test_a_gap_is_reported_then_filled_and_repeats_are_skipped():
    guard = OffsetGuard()
    fresh, repeats, gaps = guard.admit(events(0, 1, 2, 5, 6))
    assert offsets(fresh) == [0, 1, 2, 5, 6] and not repeats
    assert gaps == {TP("t", 0): (3, 4)}
    # After the seek back, 3..6 arrive again: 3 and 4 are new, 5 and 6 repeats.
    fresh, repeats, gaps = guard.admit(events(3, 4, 5, 6, 7))
    assert offsets(fresh) == [3, 4, 7] and offsets(repeats) == [5, 6] and not gaps


def test_partitions_are_tracked_apart_and_the_first_offset_is_no_gap():
    guard = OffsetGuard()
    fresh, _, gaps = guard.admit(events(40, 41) + events(7, partition=1))
    assert len(fresh) == 3 and not gaps
    _, _, gaps = guard.admit(events(9, partition=1))
    assert gaps == {TP("t", 1): (8, 8)}
