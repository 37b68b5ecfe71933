"""Detectors against closed forms: PSI, KL, shares, coverage, reward intervals, join lag."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from rlops.core.errors import ValidationError
from rlops.monitoring.detectors import (
    Coverage,
    RewardStats,
    TopShare,
    action_shares,
    feature_drift,
    join_lag,
    kl_divergence_rows,
    kl_rows,
    mode_collapse,
    psi,
    reward_drop,
    reward_summary,
    state_coverage,
)
from rlops.monitoring.window import Moments
from tests.monitoring.helpers import example


def test_psi_of_identical_distributions_is_zero() -> None:
    assert psi([10, 20, 30, 40], [10, 20, 30, 40]) == 0.0
    assert psi([10, 20, 30, 40], [1, 2, 3, 4]) == pytest.approx(0.0, abs=1e-15)


def test_psi_equals_the_hand_computation() -> None:
    # shares e = (.5, .3, .2), a = (.3, .3, .4)
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.4 - 0.2) * math.log(0.4 / 0.2)
    assert psi([50, 30, 20], [30, 30, 40]) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.2407945609, rel=1e-9)
    # symmetric in its arguments
    assert psi([30, 30, 40], [50, 30, 20]) == pytest.approx(expected, rel=1e-12)


def test_psi_floors_empty_bins_at_eps() -> None:
    # a = (.5, .5), e = (1, 0) floored to (1, eps)
    eps = 1e-4
    expected = (0.5 - 1.0) * math.log(0.5) + (0.5 - eps) * math.log(0.5 / eps)
    assert psi([10, 0], [5, 5], eps=eps) == pytest.approx(expected, rel=1e-12)


def test_feature_drift_skips_thin_windows() -> None:
    reference = {"x": np.array([50, 30, 20]), "y": np.array([1, 1])}
    window = {"x": np.array([30, 30, 40]), "y": np.array([0, 1])}
    drift = feature_drift(reference, window, min_count=2)
    assert set(drift) == {"x"}
    assert drift["x"] == pytest.approx(psi([50, 30, 20], [30, 30, 40]))


def test_kl_matches_scipy_entropy() -> None:
    rng = np.random.default_rng(7)
    served = rng.dirichlet(np.ones(5), size=20)
    baseline = rng.dirichlet(np.ones(5), size=20)
    expected = np.array([stats.entropy(p, q) for p, q in zip(served, baseline, strict=True)])
    np.testing.assert_allclose(kl_rows(served, baseline, eps=0.0), expected, rtol=1e-12)
    assert kl_divergence_rows(served, baseline, eps=0.0) == pytest.approx(expected.mean())


def test_kl_smooths_a_one_hot_baseline() -> None:
    served = np.array([[0.5, 0.5]])
    baseline = np.array([[1.0, 0.0]])
    assert np.isinf(kl_rows(served, baseline, eps=0.0)[0])
    eps = 1e-6
    q = np.array([(1.0 + eps) / (1.0 + 2 * eps), eps / (1.0 + 2 * eps)])
    assert kl_rows(served, baseline, eps=eps)[0] == pytest.approx(stats.entropy([0.5, 0.5], q))
    assert kl_divergence_rows(served, served) == pytest.approx(0.0, abs=1e-9)


def test_action_shares_per_arm_and_segment() -> None:
    counts = {
        ("control", "premium", "up"): 85,
        ("control", "premium", "down"): 15,
        ("control", "regular", "up"): 40,
        ("control", "regular", "down"): 40,
        ("control", "regular", "hold"): 20,
        ("canary", "premium", "hold"): 0,
    }
    shares = action_shares(counts)
    assert shares == {
        ("control", "premium"): TopShare("up", 0.85, 100),
        ("control", "regular"): TopShare("down", 0.40, 100),  # a tie goes to the first id
    }
    assert mode_collapse(shares, threshold=0.8, min_count=100) == {
        ("control", "premium"): TopShare("up", 0.85, 100)
    }
    assert mode_collapse(shares, threshold=0.8, min_count=101) == {}


def test_state_coverage_shares() -> None:
    reference = np.array([1, 2, 3, 4])
    coverage = state_coverage(reference, np.array([1, 1, 2, 9, 9, 9, 9, 7]))
    assert coverage == Coverage(rows=8, unseen_share=5 / 8, reference_coverage=2 / 4)
    counted = state_coverage(reference, np.array([1, 2, 9]), np.array([2, 0, 2]))
    assert counted == Coverage(rows=4, unseen_share=0.5, reference_coverage=0.25)
    assert state_coverage(reference, np.array([], dtype=np.int64)).rows == 0


def test_reward_summary_is_mean_std_and_normal_interval() -> None:
    rewards = [1.0, 2.0, 4.0, 7.0]
    examples = [example(i, r) for i, r in enumerate(rewards)]
    examples.append(example(9, 5.0, version="v2"))
    summary = reward_summary(examples)
    stats_v1 = summary[("v1", "control")]
    std = float(np.std(rewards, ddof=1))
    half = 1.96 * std / 2.0
    assert stats_v1.n == 4
    assert stats_v1.mean == pytest.approx(3.5)
    assert stats_v1.std == pytest.approx(std)
    assert (stats_v1.low, stats_v1.high) == pytest.approx((3.5 - half, 3.5 + half))
    single = summary[("v2", "control")]
    assert (single.n, single.mean, single.low, single.high) == (1, 5.0, -math.inf, math.inf)
    assert single.to_json()["low"] is None


def test_reward_drop_needs_the_whole_interval_below_zero() -> None:
    def stats_of(n: int, mean: float, std: float) -> RewardStats:
        return RewardStats.of(Moments(n, mean, std))

    before = {"a": stats_of(400, 1.0, 1.0), "b": stats_of(400, 1.0, 1.0), "c": stats_of(10, 1.0, 1)}
    after = {"a": stats_of(400, 0.8, 1.0), "b": stats_of(400, 0.95, 1.0), "c": stats_of(10, 0.0, 1)}
    drops = reward_drop(after, before, min_n=30)
    assert set(drops) == {"a", "b"}  # c has too few examples
    half = 1.96 * math.sqrt(2.0 / 400.0)
    assert drops["a"].difference == pytest.approx(-0.2)
    assert (drops["a"].low, drops["a"].high) == pytest.approx((-0.2 - half, -0.2 + half))
    assert drops["a"].dropped
    assert not drops["b"].dropped  # -0.05 +- 0.139 reaches above zero
    assert not reward_drop(after, before, min_n=30, min_drop=0.1)["a"].dropped


def test_join_lag_is_the_oldest_age_past_the_window() -> None:
    assert join_lag([100.0, 50.0, 300.0], now=1000.0, window_seconds=600.0) == 350.0
    assert join_lag([900.0], now=1000.0, window_seconds=600.0) == 0.0
    assert join_lag([], now=1000.0, window_seconds=600.0) == 0.0


P = np.array([[0.5, 0.5]])
INVALID: list[tuple[Callable[[], object], str]] = [
    (lambda: psi([1, 2], [1, 2, 3]), "actual_counts"),
    (lambda: psi([1, -2], [1, 2]), "expected_counts"),
    (lambda: psi([0, 0], [1, 2]), "expected_counts"),
    (lambda: psi([1, 2], [[1, 2]]), "actual_counts"),
    (lambda: psi([1, 2], [1, 2], eps=0.0), "eps"),
    (lambda: feature_drift({}, {"x": [1, 2]}), "window_counts.x"),
    (lambda: feature_drift({"x": [1, 2]}, {"x": [1, 2, 3]}), "window_counts.x"),
    (lambda: kl_rows(P, np.array([[0.5, 0.6]])), "baseline_probs"),
    (lambda: kl_rows(np.array([[0.5, np.nan]]), P), "served_probs"),
    (lambda: kl_rows(np.array([0.5, 0.5]), P), "served_probs"),
    (lambda: kl_rows(P, np.array([[1.0, 0.0, 0.0]])), "baseline_probs"),
    (lambda: kl_rows(P, P, eps=-1.0), "eps"),
    (lambda: mode_collapse({}, threshold=1.5), "threshold"),
    (lambda: mode_collapse({}, min_count=0), "min_count"),
    (lambda: action_shares({("a", "s", "x"): -1}), "counts"),
    (lambda: state_coverage([1.5], [1]), "reference_cells"),
    (lambda: state_coverage([1], [1], [-1]), "window_counts"),
    (lambda: reward_drop({}, {}, min_n=1), "min_n"),
    (lambda: reward_summary([], z=0.0), "z"),
    (lambda: join_lag([1.0], now=math.inf, window_seconds=1.0), "now"),
    (lambda: join_lag([1.0], now=2.0, window_seconds=-1.0), "window_seconds"),
    (lambda: join_lag([math.nan], now=2.0, window_seconds=1.0), "pending_ts"),
]


@pytest.mark.parametrize(("call", "field"), INVALID)
def test_invalid_inputs_name_the_field(call: Callable[[], object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        call()
    assert caught.value.field == field
