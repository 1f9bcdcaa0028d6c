"""Window arithmetic and pane aggregates, without a broker."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spotify_stream.errors import UserError
from spotify_stream.settings import Settings
from spotify_stream.tables import sketch
from spotify_stream.tables.windows import (
    Aggregate,
    WindowClock,
    WindowSpec,
    pane_size,
    window_specs,
)

H = 3_600_000


def test_window_ends_are_step_aligned_and_half_open():
    hopping = WindowSpec(24 * H, H)
    assert hopping.last_end(3 * H) == 3 * H
    assert hopping.last_end(3 * H - 1) == 2 * H
    assert list(hopping.ends_holding(0, H, -1, 3 * H)) == [H, 2 * H, 3 * H]
    assert list(hopping.ends_holding(0, H, H, 3 * H)) == [2 * H, 3 * H]
    assert list(hopping.ends_holding(0, H, 0, 100 * H)) == [n * H for n in range(1, 25)]
    assert list(hopping.ends_holding(5 * H, H, 0, 5 * H)) == []
    tumbling = WindowSpec(H, H)
    assert list(tumbling.ends_holding(-H, H, -H - 1, 0)) == [0]
    assert tumbling.last_end(-1) == -H
    ten = 10 * 60_000
    assert list(WindowSpec(3 * ten, ten).ends_holding(0, ten, 0, H)) == [ten, 2 * ten, 3 * ten]


SPECS = (WindowSpec(H, H), WindowSpec(4 * H, H))
GRACE = 10 * 60_000


def brute_force(times: list[int]) -> tuple[list[bool], dict[tuple[int, int], int]]:
    """Which arrivals are late, and the plays of every closed window that holds one,
    by enumerating windows: late means older than the end of a window that is closed
    (its end at or before the newest accepted time minus the grace)."""
    accepted, late, newest = [], [], None
    for t in times:
        closed_ends = [
            start + spec.size_ms
            for spec in SPECS
            for start in range(-100 * H, 200 * H, spec.step_ms)
            if newest is not None and start + spec.size_ms <= newest - GRACE
        ]
        is_late = bool(closed_ends) and t < max(closed_ends)
        late.append(is_late)
        if not is_late:
            accepted.append(t)
            newest = t if newest is None else max(newest, t)
    windows = {}
    for spec in SPECS:
        for start in range(-100 * H, 200 * H, spec.step_ms):
            end = start + spec.size_ms
            plays = sum(start <= t < end for t in accepted)
            if plays and end <= newest - GRACE:
                windows[spec.size_ms, end] = plays
    return late, windows


def by_clock(times: list[int], cuts: list[int]) -> tuple[list[bool], dict[tuple[int, int], int]]:
    """The same through ``WindowClock``, in batches cut at ``cuts``, windows emitted
    after each batch from panes as the agent keeps them."""
    clock, panes, late, windows = WindowClock(SPECS, GRACE), {}, [], {}
    bounds = [0, *sorted(set(cuts)), len(times)]
    for lo, hi in itertools.pairwise(bounds):
        for t in times[lo:hi]:
            late.append(not clock.accepts(t))
            if not late[-1]:
                pane = t - t % H
                panes[pane] = panes.get(pane, 0) + 1
        for spec, end in clock.due(panes, H):
            assert (spec.size_ms, end) not in windows, "a window emitted twice"
            windows[spec.size_ms, end] = sum(
                n for pane, n in panes.items() if end - spec.size_ms <= pane < end
            )
        restored = WindowClock(SPECS, GRACE)
        restored.load(clock.dumps())
        assert restored == clock
    return late, windows


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 30 * H), min_size=1, max_size=60),
    st.lists(st.integers(0, 60), max_size=5),
)
def test_window_clock_equals_brute_force_in_any_arrival_order_and_batching(times, cuts):
    assert by_clock(times, [c for c in cuts if c < len(times)]) == brute_force(times)


def test_in_window_plays_out_of_order_are_not_late():
    # 100 plays at 16:35, then 100 at 16:30: no window has closed, none is late
    clock = WindowClock((WindowSpec(H, H), WindowSpec(24 * H, H)), 60_000)
    assert all(clock.accepts(16 * H + 35 * 60_000) for _ in range(100))
    assert all(clock.accepts(16 * H + 30 * 60_000) for _ in range(100))
    assert clock.closed == 16 * H
    assert not clock.accepts(16 * H - 1)


def test_specs_and_panes_from_settings():
    specs = window_specs(Settings(_env_file=None))
    assert [(s.name, s.size_ms, s.step_ms) for s in specs] == [("1h", H, H), ("24h", 24 * H, H)]
    assert pane_size(specs) == H
    odd = window_specs(
        Settings(tumbling_window=1800, hopping_window=7200, hopping_step=1200, _env_file=None)
    )
    assert pane_size(odd) == 600_000
    with pytest.raises(UserError, match="must differ"):
        window_specs(Settings(tumbling_window=3600, hopping_window=3600, _env_file=None))


def test_aggregates_merge_like_one_aggregate():
    users = [f"u{i % 7}" for i in range(30)]
    plays = [
        (sketch.listener_hash(user), i % 3 == 0, None if i % 10 == 9 else float(i))
        for i, user in enumerate(users)
    ]
    whole = Aggregate.of(plays)
    parts = [Aggregate.of(plays[:11]), Aggregate.of(plays[11:20]), Aggregate.of(plays[20:])]
    assert Aggregate.combined(parts) == whole
    assert Aggregate.combined([Aggregate.combined(parts[:2]), parts[2]]) == whole
    assert Aggregate.combined([]) == Aggregate()
    assert Aggregate.loads(whole.dumps()) == whole
    rated = [i for i in range(30) if i % 10 != 9]
    assert whole.summary() == {
        "plays": 30,
        "unique_listeners": 7,
        "skip_rate": 10 / 30,
        "mean_popularity": sum(rated) / len(rated),
    }
    assert Aggregate().summary()["mean_popularity"] is None


def test_listener_sketch_is_exact_below_k_and_close_above():
    assert sketch.estimate(sketch.merge([sketch.listener_hash(f"u{i}") for i in range(63)])) == 63
    rng = random.Random(1)
    errors = []
    for trial in range(20):
        users = {f"user-{trial}-{rng.random()}" for _ in range(5000)}
        estimate = sketch.estimate(sketch.merge([sketch.listener_hash(u) for u in users]))
        errors.append(abs(estimate - len(users)) / len(users))
    assert sorted(errors)[10] < 0.15  # median relative error, against ~12.7% expected


def test_a_copy_sent_again_by_an_upstream_replay_is_seen_once():
    clock = WindowClock(SPECS, GRACE)
    assert [clock.first_time("0:1", s) for s in (5, 6, 9)] == [True, True, True]
    assert clock.first_time("1:1", 5)  # another path: its own sequence
    assert [clock.first_time("0:1", s) for s in (6, 9, 10)] == [False, False, True]
    assert clock.first_time("0:1", -1) and clock.first_time("0:1", -1)  # origin unknown
    restored = WindowClock(SPECS, GRACE)
    restored.load(clock.dumps())
    assert restored == clock and not restored.first_time("1:1", 5)
