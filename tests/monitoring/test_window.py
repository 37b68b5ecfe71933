"""Rolling windows: buckets roll off on an injected clock, keys stay capped, sums are exact."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest

from rlops.core.clock import ManualClock
from rlops.core.errors import ValidationError
from rlops.monitoring.window import (
    Moments,
    RollingCounts,
    RollingHistogram,
    RollingSums,
    WindowConfig,
)

MINUTE = 60.0


def test_counts_roll_off_after_the_window() -> None:
    clock = ManualClock(0.0)
    counts: RollingCounts[str] = RollingCounts(WindowConfig(MINUTE, 15), clock)
    counts.add(["a", "a", "b"])
    clock.set(5 * MINUTE)
    counts.add(["b", "c"])
    totals = counts.totals(15 * MINUTE - 1)  # bucket 14: buckets 0..14 are in the window
    assert totals.counts == {"a": 2, "b": 2, "c": 1}
    assert totals.total == 5
    totals = counts.totals(15 * MINUTE)  # bucket 15: bucket 0 has rolled off
    assert totals.counts == {"b": 1, "c": 1}
    clock.set(20 * MINUTE)
    assert counts.totals().counts == {}


def test_a_reused_slot_is_cleared_before_it_counts_again() -> None:
    clock = ManualClock(0.0)
    counts: RollingCounts[str] = RollingCounts(WindowConfig(MINUTE, 3), clock)
    counts.add(["a"] * 4)
    clock.set(3 * MINUTE)  # bucket 3 lands in bucket 0's slot
    counts.add(["a"])
    assert counts.totals().counts == {"a": 1}


def test_adds_for_a_bucket_that_rolled_off_are_counted_as_stale() -> None:
    counts: RollingCounts[str] = RollingCounts(WindowConfig(MINUTE, 15), ManualClock())
    counts.add(["a"], now=30 * MINUTE)
    counts.add(["a", "a"], now=10 * MINUTE)  # 20 minutes late
    counts.add(["a"], now=25 * MINUTE)  # late but inside the window
    totals = counts.totals(30 * MINUTE)
    assert totals.counts == {"a": 2}
    assert totals.stale == 2


def test_keys_stay_capped_under_100000_distinct_unit_ids() -> None:
    config = WindowConfig(MINUTE, 15, max_keys=1000)
    clock = ManualClock(0.0)
    counts: RollingCounts[str] = RollingCounts(config, clock)
    units = [f"user-{i:06d}" for i in range(100_000)]
    for start in range(0, len(units), 64):
        counts.add(units[start : start + 64])
    totals = counts.totals()
    assert counts.n_keys == 1000
    assert len(totals.counts) == 1000
    assert totals.other == 99_000
    assert totals.total == 100_000
    # memory: one row per key and one for other, each `buckets` floats
    assert counts.nbytes <= (config.max_keys + 1) * config.buckets * 8
    # once the window has moved on, keys with nothing in it make room for new ones
    clock.set(16 * MINUTE)
    counts.add(["fresh"])
    assert counts.totals().counts == {"fresh": 1}
    assert counts.n_keys == 1


def test_sums_per_key_and_channel() -> None:
    sums: RollingSums[tuple[str, str]] = RollingSums(2, WindowConfig(MINUTE, 5), ManualClock())
    keys = [("a", "x"), ("b", "x"), ("a", "x")]
    sums.add(keys, [[1.0, 2.0], [3.0, -4.0], [5.0, 6.0]], now=0.0)
    sums.add([("b", "x")], [[1.0, 1.0]], now=MINUTE)
    totals = sums.totals(MINUTE)
    assert set(totals.sums) == {("a", "x"), ("b", "x")}
    np.testing.assert_allclose(totals.sums[("a", "x")], [6.0, 8.0])
    np.testing.assert_allclose(totals.sums[("b", "x")], [4.0, -3.0])
    np.testing.assert_allclose(totals.other, [0.0, 0.0])


def test_histogram_counts_bins_over_the_window() -> None:
    clock = ManualClock(0.0)
    hist = RollingHistogram(4, WindowConfig(MINUTE, 2), clock)
    hist.add(np.array([0, 1, 1, 3]))
    clock.set(MINUTE)
    hist.add(np.array([3]))
    np.testing.assert_array_equal(hist.totals(), [1, 2, 0, 2])
    clock.set(2 * MINUTE)
    np.testing.assert_array_equal(hist.totals(), [0, 0, 0, 1])


def test_concurrent_adds_lose_nothing() -> None:
    clock = ManualClock(0.0)
    counts: RollingCounts[str] = RollingCounts(WindowConfig(MINUTE, 15), clock)
    keys = [f"k{i % 7}" for i in range(100)]

    def work() -> None:
        for _ in range(100):
            counts.add(keys)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts.totals().total == 4 * 100 * 100


def test_moments_match_numpy() -> None:
    x = np.random.default_rng(3).normal(2.0, 3.0, 500)
    m = Moments.of(len(x), float(x.sum()), float((x * x).sum()))
    assert m.n == 500
    assert m.mean == pytest.approx(x.mean(), rel=1e-12)
    assert m.std == pytest.approx(x.std(ddof=1), rel=1e-9)
    assert Moments.of(0, 0.0, 0.0) == Moments(0, 0.0, 0.0)
    assert Moments.of(1, 4.0, 16.0) == Moments(1, 4.0, 0.0)


INVALID: list[tuple[Callable[[], object], str]] = [
    (lambda: WindowConfig(bucket_seconds=0.0), "bucket_seconds"),
    (lambda: WindowConfig(bucket_seconds=float("nan")), "bucket_seconds"),
    (lambda: WindowConfig(buckets=0), "buckets"),
    (lambda: WindowConfig(buckets=2.5), "buckets"),  # type: ignore[arg-type]  # the test's point
    (lambda: WindowConfig(max_keys=0), "max_keys"),
    (lambda: RollingSums[str](0), "channels"),
    (lambda: RollingSums[str](2).add(["a"], [[1.0]], now=0.0), "values"),
    (lambda: RollingSums[str](1).add(["a"], [float("inf")], now=0.0), "values"),
    (lambda: RollingCounts[str]().add(["a"], now=float("nan")), "now"),
    (lambda: RollingHistogram(0), "width"),
    (lambda: RollingHistogram(3).add(np.array([3]), now=0.0), "bins"),
    (lambda: RollingHistogram(3).add(np.array([0.5]), now=0.0), "bins"),
]


@pytest.mark.parametrize(("build", "field"), INVALID)
def test_invalid_inputs_name_the_field(build: Callable[[], object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build()
    assert caught.value.field == field
