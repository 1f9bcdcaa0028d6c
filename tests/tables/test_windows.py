"""Window arithmetic and pane aggregates, without a broker."""

from __future__ import annotations

import random

import pytest

from spotify_stream.errors import UserError
from spotify_stream.settings import Settings
from spotify_stream.tables import sketch
from spotify_stream.tables.windows import Aggregate, WindowSpec, pane_size, window_specs

H = 3_600_000


def test_window_ends_between_are_step_aligned_and_half_open():
    hopping = WindowSpec(24 * H, H)
    assert hopping.ends_between(0, 3 * H) == [H, 2 * H, 3 * H]
    assert hopping.ends_between(H, 3 * H) == [2 * H, 3 * H]
    assert hopping.ends_between(H + 1, 2 * H - 1) == []
    tumbling = WindowSpec(H, H)
    assert tumbling.ends_between(-1, 0) == [0]
    assert WindowSpec(30 * 60_000, 10 * 60_000).ends_between(0, H) == [
        m * 60_000 for m in range(10, 61, 10)
    ]


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
    plays = [(f"u{i % 7}", i % 3 == 0, float(i)) for i in range(30)]
    whole, a, b = Aggregate(), Aggregate(), Aggregate()
    for n, (user, skipped, pop) in enumerate(plays):
        whole.add(sketch.listener_hash(user), skipped, pop)
        (a if n < 11 else b).add(sketch.listener_hash(user), skipped, pop)
    a.merge(b)
    assert a == whole
    assert Aggregate.loads(whole.dumps()) == whole
    assert whole.summary() == {
        "plays": 30,
        "unique_listeners": 7,
        "skip_rate": 10 / 30,
        "mean_popularity": sum(range(30)) / 30,
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
