"""Closed-form numbers on tiny hand-built logs."""

from __future__ import annotations

import numpy as np
import pytest

from rlops.ope import (
    DROS,
    IPS,
    SNDR,
    SNIPS,
    BanditInputs,
    Bernstein,
    Bootstrap,
    DirectMethod,
    DoublyRobust,
    Estimator,
    Normal,
    SwitchDR,
    estimate,
    estimate_all,
)
from rlops.ope.diagnostics import Thresholds, diagnose

# Uniform logging over 2 actions; the target always takes action 0.
REWARD = np.array([1.0, 0.0, 0.5, 1.0, 0.0, 0.25])
ACTION = np.array([0, 1, 0, 1, 0, 0])
PSCORE = np.full(6, 0.5)
ALWAYS_0 = np.tile([1.0, 0.0], (6, 1))
Q_HAT = np.tile([0.4, 0.6], (6, 1))


def _data(q_hat: np.ndarray | None = None) -> BanditInputs:
    return BanditInputs.of(
        reward=REWARD, pscore=PSCORE, action=ACTION, action_dist=ALWAYS_0, q_hat=q_hat
    )


def test_ips_is_the_weighted_average_of_matching_rewards() -> None:
    # w = 2 where the logged action is 0, else 0: IPS = (2 * (1 + 0.5 + 0 + 0.25)) / 6
    result = estimate(IPS(), _data(), interval_config=Normal())
    assert result.value == pytest.approx(2 * 1.75 / 6)
    assert result.clipped_mass == 0.0
    assert result.ess == pytest.approx(4.0)  # (4 * 2)^2 / (4 * 4)


def test_snips_is_the_mean_reward_of_matching_events() -> None:
    assert estimate(SNIPS(), _data(), interval_config=Normal()).value == pytest.approx(1.75 / 4)


def test_clipping_at_one_halves_the_mass() -> None:
    result = estimate(IPS(clip=1.0), _data(), interval_config=Normal())
    assert result.value == pytest.approx(1.75 / 6)
    assert result.clipped_mass == pytest.approx(0.5)


def test_on_policy_ips_is_the_sample_mean() -> None:
    # target = logging policy: every weight is 1
    data = BanditInputs.of(
        reward=REWARD, pscore=PSCORE, action=ACTION, action_dist=np.full((6, 2), 0.5)
    )
    assert estimate(IPS(), data, interval_config=Normal()).value == pytest.approx(REWARD.mean())


def test_dm_dr_and_variants_by_hand() -> None:
    data = _data(Q_HAT)
    dm = 0.4
    residual = (REWARD - 0.4) * 2 * (ACTION == 0)  # w (r - q(x, a_i)) where w = 2, else 0
    dr = dm + residual.mean()
    by_name = {
        e.estimator: e.value
        for e in estimate_all(
            [DirectMethod(), DoublyRobust(), SNDR(), SwitchDR(switch=1.5), DROS(shrinkage=4.0)],
            data,
            interval_config=Normal(),
        )
    }
    assert by_name["dm"] == pytest.approx(dm)
    assert by_name["dr"] == pytest.approx(dr)
    assert by_name["sndr"] == pytest.approx(dm + residual.sum() / 8.0)
    assert by_name["switch-dr(lambda=1.5)"] == pytest.approx(dm)  # every w = 2 > 1.5
    shrunk = 4.0 * 2.0 / (4.0 + 4.0)  # lambda w / (w^2 + lambda) = 1
    assert by_name["dr-os(lambda=4)"] == pytest.approx(dm + (residual / 2 * shrunk).mean())


def test_switch_and_shrinkage_limits_are_dr_and_dm() -> None:
    data = _data(Q_HAT)
    dr = estimate(DoublyRobust(), data, interval_config=Normal()).value
    dm = estimate(DirectMethod(), data, interval_config=Normal()).value
    cases: list[tuple[Estimator, float]] = [
        (SwitchDR(switch=float("inf")), dr),
        (SwitchDR(switch=0.0), dm),
        (DROS(shrinkage=float("inf")), dr),
        (DROS(shrinkage=0.0), dm),
    ]
    for estimator, limit in cases:
        assert estimate(estimator, data, interval_config=Normal()).value == pytest.approx(limit)


def test_dr_with_perfect_model_and_zero_noise_is_exact() -> None:
    truth = np.tile([0.3, 0.8], (6, 1))
    reward = truth[np.arange(6), ACTION]
    data = BanditInputs.of(
        reward=reward, pscore=PSCORE, action=ACTION, action_dist=ALWAYS_0, q_hat=truth
    )
    result = estimate(DoublyRobust(), data, interval_config=Normal())
    assert result.value == pytest.approx(0.3)
    assert result.high - result.low == pytest.approx(0.0, abs=1e-12)


def test_interval_contains_value_and_level_orders_widths() -> None:
    data = _data(Q_HAT)
    wide = estimate(DoublyRobust(), data, interval_config=Normal(level=0.99))
    narrow = estimate(DoublyRobust(), data, interval_config=Normal(level=0.5))
    assert wide.low < narrow.low < narrow.value < narrow.high < wide.high
    assert wide.level == 0.99
    assert wide.method == "normal"


def test_bernstein_is_wider_than_normal_and_within_bounds() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    data = BanditInputs.of(
        reward=rng.random(n).round(),
        pscore=np.full(n, 0.5),
        action=rng.integers(0, 2, n),
        action_dist=np.full((n, 2), 0.5),
    )
    normal = estimate(IPS(), data, interval_config=Normal())
    bound = estimate(IPS(), data, interval_config=Bernstein(low=0.0, high=1.0))
    assert 0.0 <= bound.low < normal.low < normal.high < bound.high <= 1.0
    assert bound.method == "bernstein"


def test_bootstrap_is_seeded_and_thread_count_free() -> None:
    data = _data(Q_HAT)
    a = estimate(DoublyRobust(), data, interval_config=Bootstrap(seed=7, n_resamples=500))
    b = estimate(
        DoublyRobust(), data, interval_config=Bootstrap(seed=7, n_resamples=500, workers=1)
    )
    c = estimate(DoublyRobust(), data, interval_config=Bootstrap(seed=8, n_resamples=500))
    assert (a.low, a.high) == (b.low, b.high)
    assert (a.low, a.high) != (c.low, c.high)
    assert a.low <= a.value <= a.high


def test_shared_bootstrap_matches_single_estimator_bootstrap() -> None:
    data = _data(Q_HAT)
    config = Bootstrap(seed=3, n_resamples=200)
    alone = estimate(IPS(), data, interval_config=config)
    together = estimate_all([IPS(), SNIPS()], data, interval_config=config)[0]
    assert together.value == alone.value
    assert together.low == pytest.approx(alone.low, abs=1e-6)
    assert together.high == pytest.approx(alone.high, abs=1e-6)


def test_diagnostics_verdicts() -> None:
    data = _data()
    small = diagnose(data)
    assert small.verdict == "too-few-events"
    assert small.support == pytest.approx(4 / 6)
    assert small.max_weight == pytest.approx(2.0)
    relaxed = Thresholds(min_events=1, min_supported_events=1, min_ess=1.0)
    assert diagnose(data, thresholds=relaxed).verdict == "ok"
    strict = Thresholds(min_events=1, min_supported_events=1, min_ess=5.0)
    verdict = diagnose(data, thresholds=strict)
    assert verdict.verdict == "low-support"
    assert "effective sample size" in verdict.reason
    # a logger that never takes action 0 cannot support a target that always does
    never_0 = np.tile([0.0, 1.0], (6, 1))
    blind = diagnose(data, logging_dist=never_0, thresholds=relaxed)
    assert blind.verdict == "low-support"
    assert blind.unsupported_mass == pytest.approx(1.0)


def test_bootstrap_chunks_are_independent_of_threads() -> None:
    from rlops.ope.intervals import bootstrap_means

    columns = np.random.default_rng(1).random((1000, 2))
    one = bootstrap_means(columns, n_resamples=64, seed=5, workers=1, chunk_elements=5000)
    two = bootstrap_means(columns, n_resamples=64, seed=5, workers=2, chunk_elements=5000)
    np.testing.assert_array_equal(one, two)
    assert one.shape == (64, 2)
    assert np.all(np.abs(one.mean(axis=0) - columns.mean(axis=0)) < 0.02)
