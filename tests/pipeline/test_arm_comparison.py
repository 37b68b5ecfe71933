"""Canary minus production against references: Welch's t, a hand-worked cluster variance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rlops.core.errors import ValidationError
from rlops.pipeline.arm_comparison import arm_mean, compare_arms


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_decision_per_unit_is_welchs_t_interval(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.3, 1.0, size=25)
    b = rng.normal(0.0, 2.0, size=60)  # unequal sizes and variances: Welch, not Student
    canary = arm_mean(a, [f"a{i}" for i in range(len(a))])
    production = arm_mean(b, [f"b{i}" for i in range(len(b))])
    for level in (0.9, 0.95):
        ours = compare_arms(canary, production, level=level)
        ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence_level=level)
        assert ours.difference == pytest.approx(a.mean() - b.mean(), rel=1e-12)
        assert ours.low == pytest.approx(ref.low, rel=1e-10)
        assert ours.high == pytest.approx(ref.high, rel=1e-10)
        assert ours.level == level


def test_clustered_variance_matches_the_hand_computed_closed_form() -> None:
    # Units u: rewards [1, 2], v: [0], w: [3, 3, 0]. S = (3, 0, 6), N = (2, 1, 3).
    rewards = np.array([1.0, 2.0, 0.0, 3.0, 3.0, 0.0])
    units = ["u", "u", "v", "w", "w", "w"]
    mean = arm_mean(rewards, units)
    # mean = 9 / 6 = 1.5; residuals S - 1.5 N = (0, -1.5, 1.5); sum of squares 4.5;
    # variance = 3/2 * 4.5 / 6^2 = 0.1875.
    assert mean.mean == pytest.approx(1.5)
    assert mean.variance == pytest.approx(0.1875)
    assert (mean.decisions, mean.units) == (6, 3)
    # The difference: production u: [0, 0], v: [1] -> mean 1/3, residuals (-2/3, 2/3),
    # variance 2/1 * (8/9) / 9 = 16/81; dof = (va+vb)^2 / (va^2/2 + vb^2/1).
    other = arm_mean(np.array([0.0, 0.0, 1.0]), ["u", "u", "v"])
    assert other.variance == pytest.approx(16 / 81)
    c = compare_arms(mean, other, level=0.95)
    va, vb = 0.1875, 16 / 81
    dof = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 1)
    half = stats.t.ppf(0.975, dof) * math.sqrt(va + vb)
    assert c.difference == pytest.approx(1.5 - 1 / 3)
    assert (c.low, c.high) == pytest.approx((1.5 - 1 / 3 - half, 1.5 - 1 / 3 + half))


def test_the_same_rewards_in_fewer_units_give_a_wider_interval() -> None:
    rng = np.random.default_rng(7)
    canary = np.sort(rng.normal(0.1, 1.0, size=120))  # sorted: neighbours are alike
    production = rng.normal(0.0, 1.0, size=400)
    base = arm_mean(production, [f"p{i % 40}" for i in range(len(production))])
    widths = []
    for n_units in (120, 24, 6):
        units = [f"c{i * n_units // len(canary)}" for i in range(len(canary))]  # contiguous
        c = compare_arms(arm_mean(canary, units), base)
        assert c.difference == pytest.approx(canary.mean() - production.mean())
        widths.append(c.high - c.low)
    assert widths[0] < widths[1] < widths[2]
    assert widths[2] > 3 * widths[0]  # six look-alike units are worth far less than 120 draws


def test_equal_constant_arms_give_a_point_interval() -> None:
    c = compare_arms(arm_mean(np.ones(4), list("abab")), arm_mean(np.ones(3), list("xyz")))
    assert (c.difference, c.low, c.high) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("rewards", "units", "field"),
    [
        ([1.0, 2.0, 3.0], ["a", "a", "a"], "units"),  # one unit
        ([], [], "units"),  # no units at all
        ([1.0, 2.0], ["a", "b", "c"], "units"),  # mismatched lengths
        ([[1.0, 2.0]], [["a", "b"]], "units"),  # not 1-d
        ([1.0, float("nan")], ["a", "b"], "rewards"),
        ([1.0, float("inf")], ["a", "b"], "rewards"),
    ],
)
def test_bad_arms_are_refused_naming_the_field(
    rewards: list[float], units: list[str], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        arm_mean(np.asarray(rewards, dtype=np.float64), units)
    assert caught.value.field == field


@pytest.mark.parametrize("level", [0.0, 1.0, -0.5, 1.5])
def test_a_level_outside_the_unit_interval_is_refused(level: float) -> None:
    arm = arm_mean(np.array([0.0, 1.0]), ["a", "b"])
    with pytest.raises(ValidationError) as caught:
        compare_arms(arm, arm, level=level)
    assert caught.value.field == "level"
