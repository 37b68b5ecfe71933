"""Statistical accuracy over 20 seeds on a synthetic bandit with a known true value."""

from __future__ import annotations

import numpy as np
import pytest

from rlops.ope import IPS, BanditInputs, Bootstrap, DoublyRobust, Estimate, estimate_all
from rlops.ope.reward_models import RewardModel
from rlops.ope.synthetic import SyntheticBandit

SEEDS = range(20)
N_EVENTS = 3000


@pytest.fixture(scope="module")
def runs() -> tuple[float, list[tuple[Estimate, Estimate]]]:
    env = SyntheticBandit(n_actions=5, dim=3, seed=11)
    target = env.egreedy_policy(0.2)
    truth = env.true_value(target, n=400_000)
    out = []
    for seed in SEEDS:
        log = env.sample(N_EVENTS, seed=seed)
        q_hat = RewardModel(kind="ridge", n_folds=3, seed=seed).fit_predict(
            context=log.context, action=log.action, reward=log.reward, n_actions=5
        )
        data = BanditInputs.of(
            reward=log.reward,
            pscore=log.pscore,
            action=log.action,
            action_dist=target(log.context),
            q_hat=q_hat,
        )
        ips, dr = estimate_all(
            [IPS(), DoublyRobust()],
            data,
            interval_config=Bootstrap(level=0.95, n_resamples=400, seed=seed),
        )
        out.append((ips, dr))
    return truth, out


def test_dr_error_no_larger_than_ips(runs: tuple[float, list[tuple[Estimate, Estimate]]]) -> None:
    truth, results = runs
    ips_error = np.mean([abs(ips.value - truth) for ips, _ in results])
    dr_error = np.mean([abs(dr.value - truth) for _, dr in results])
    assert dr_error <= ips_error


@pytest.mark.parametrize("which", [0, 1], ids=["ips", "dr"])
def test_95_percent_intervals_cover_truth(
    runs: tuple[float, list[tuple[Estimate, Estimate]]], which: int
) -> None:
    truth, results = runs
    covered = sum(r[which].low <= truth <= r[which].high for r in results)
    assert covered >= 18  # at least 90% of 20 seeds


def test_estimates_are_unbiased_on_average(
    runs: tuple[float, list[tuple[Estimate, Estimate]]],
) -> None:
    truth, results = runs
    for which in (0, 1):
        values = np.array([r[which].value for r in results])
        standard_error = values.std(ddof=1) / np.sqrt(len(values))
        assert abs(values.mean() - truth) < 3 * standard_error + 1e-3
