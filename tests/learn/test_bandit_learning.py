"""Bandits learning in the advisor simulator, seeded, with thresholds stated up front.

The online loop (:func:`rlops.learn.online.advisor_online`) gives every user a strategy
each trading day, scores the day's outcomes with the advisor reward and folds them in
before the next day. The simulator computes a reward from the next 30 trading days, so
the loop treats every reward window as already elapsed (see that module).

What the advisor reward is like, measured while writing these tests (50 users, 250
bootstrapped days, uniform-random actions): a decision's reward is a 30-day Sharpe ratio
plus small terms, so its noise is about one unit and is shared by every user holding a
similar portfolio on that day (the day-to-day spread of the daily mean is ~0.7, the
spread within a day ~0.3, while the strategies differ by ~0.1). Learners therefore see
few independent market states per run, and a single run's ranking is noisy; the test
compares averages over eight seeds and counts the seeds won.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no stubs ship

from rlops.core.actions import Action
from rlops.learn.bandits import BanditConfig, BanditLearner, standardizer
from rlops.learn.online import advisor_online
from rlops.learn.simdata import advisor_logs
from rlops.rewards.seeds import advisor_reward
from rlops.sim.advisor_core import (
    ADVISOR_ACTIONS,
    ADVISOR_SCHEMA,
    COLUMN,
    TRAILING_DAYS,
    AdvisorConfig,
    AdvisorCore,
)
from rlops.sim.baselines import AdvisorRules, UniformRandom
from rlops.sim.market_data import MarketSpec, build_market
from rlops.sim.rollout import generators
from rlops.sim.vector_reward import vector_reward

pytestmark = pytest.mark.slow
Array = npt.NDArray[np.float64]

USERS = AdvisorConfig(n_users=50)
MARKET = MarketSpec(mode="bootstrap", n_days=250)  # a year drawn in blocks from 1999-2018
SEEDS = tuple(range(8))
# A new strategy for risk-tolerant users: it declares the target volatility they want
# (0.18, so users with risk tolerance >= 0.4 are within 1.4 misfit units and mostly
# follow it) but holds mostly cash and bonds, so its 30-day Sharpe ratio is high. Its
# features lie outside the catalog's: no existing strategy is both cash-heavy and
# aimed at high volatility.
INCOME_PLUS = Action("income_plus", (0.05, 0.0, 0.25, 0.70, 0.18))
SUITED = 0.4  # risk tolerance from which income_plus suits a user


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread() -> Iterator[None]:
    """The ridge matrices are tiny: BLAS threads only contend on a shared machine."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def scaling() -> tuple[Array, Array]:
    """Feature standardisation from an earlier, uniform-random run on another seed."""
    logs = advisor_logs(UniformRandom(), USERS, MarketSpec(mode="bootstrap", n_days=60), seed=999)
    return standardizer(logs.features)


def _online(config: BanditConfig, seed: int, scaling: tuple[Array, Array]) -> float:
    shift, scale = scaling
    learner = BanditLearner(
        config, ADVISOR_ACTIONS, ADVISOR_SCHEMA.dim, shift=shift, scale=scale, seed=seed
    )
    return advisor_online(learner, USERS, MARKET, seed).mean_reward


def test_linucb_beats_epsilon_greedy_and_the_rules(
    scaling: tuple[Array, Array],
) -> None:
    """Shared-form LinUCB against epsilon-greedy on the same ridge model and against the
    risk-band rules, on the same users and markets (common random numbers per seed).

    Measured (average reward per decision over 8 seeds x 250 days x 50 users):
    LinUCB 0.979, epsilon-greedy 0.651, rules 0.625. LinUCB wins on 7 of 8 seeds against
    each; mean margins 0.33 and 0.35. Asserted: a mean margin of at least 0.2 against
    each and wins on at least 6 of 8 seeds.
    """
    linucb = BanditConfig(rule="linucb", form="shared", alpha=0.3)
    epsilon = BanditConfig(rule="epsilon_greedy", form="shared", epsilon=0.1)
    rules = AdvisorRules(ADVISOR_SCHEMA)
    ucb = np.array([_online(linucb, s, scaling) for s in SEEDS])
    eps = np.array([_online(epsilon, s, scaling) for s in SEEDS])
    base = np.array([advisor_online(rules, USERS, MARKET, s).mean_reward for s in SEEDS])
    print(f"\nLinUCB {ucb.mean():.3f}  epsilon-greedy {eps.mean():.3f}  rules {base.mean():.3f}")
    print(f"per seed: LinUCB {ucb.round(3)}\n  eps {eps.round(3)}\n  rules {base.round(3)}")
    assert ucb.mean() - eps.mean() >= 0.2
    assert ucb.mean() - base.mean() >= 0.2
    assert int((ucb > eps).sum()) >= 6
    assert int((ucb > base).sum()) >= 6


def _counterfactual_rewards(seed: int) -> tuple[Array, Array]:
    """Every strategy's one-day reward for the same users on the same days: the
    simulator is copied before each step, so each strategy meets the same draws."""
    catalog = ADVISOR_ACTIONS.add(INCOME_PLUS)
    world, _ = generators(seed)
    data, first, last = build_market(MARKET, world, lookback=TRAILING_DAYS, window=30)
    core = AdvisorCore(AdvisorConfig(n_users=200), data, first, last, world, catalog)
    rules = AdvisorRules(ADVISOR_SCHEMA)
    rewards, tolerance = [], []
    for day in range(60):
        if day % 3 == 0:
            per_action = []
            for a in range(len(catalog)):
                step = copy.deepcopy(core).step(np.full(core.n, a, dtype=np.int64))
                per_action.append(vector_reward(advisor_reward, step.signals))
            rewards.append(np.stack(per_action, axis=1))
            tolerance.append(core.risk_tolerance.copy())
        core.step(np.argmax(rules.probabilities(core.observe(), ADVISOR_ACTIONS), axis=1))
    return np.concatenate(rewards), np.concatenate(tolerance)


def test_the_new_strategy_does_suit_risk_tolerant_users() -> None:
    """Ground truth for the cold-start test, from one-day counterfactuals over 4 seeds x
    20 days x 200 users: for users with risk tolerance >= 0.4, income_plus's mean reward
    beats the best existing strategy's by 0.60 (asserted 0.3); for the others by 0.09
    (asserted: less than for the suited). Its edge grows with risk tolerance, as the
    share of users who follow it does."""
    runs = [_counterfactual_rewards(seed) for seed in range(4)]
    rewards = np.concatenate([r for r, _ in runs])
    tolerance = np.concatenate([t for _, t in runs])
    suited = rewards[tolerance >= SUITED].mean(axis=0)
    others = rewards[tolerance < SUITED].mean(axis=0)
    edge, other_edge = suited[-1] - suited[:-1].max(), others[-1] - others[:-1].max()
    print(f"\nincome_plus edge: suited {edge:.3f}, others {other_edge:.3f}")
    assert edge >= 0.3
    assert other_edge < edge


def test_a_new_strategy_is_chosen_for_the_users_it_suits_at_once() -> None:
    """Cold start: a shared-form bandit trained from logs (500 uniform-random days, no
    data on income_plus) gets income_plus added to its catalog, without refitting, and
    serves fresh users at once.

    At each suited user's first decision, before any outcome of income_plus is seen,
    shared-form LinUCB chooses it for at least 90% of them (measured 98-100% over the
    training seeds), and so does the greedy rule for at least 75% (measured 83-93%):
    the choice comes from the new strategy's features, not from optimism. A disjoint
    model, which knows nothing of an unseen action, gives it to at most 25% under the
    greedy rule (measured 0-21%).
    """
    fresh = advisor_logs(
        UniformRandom(),
        AdvisorConfig(n_users=400),
        MarketSpec(start="2013-01-02", end="2017-12-29"),
        seed=7,
        max_days=1,
    )
    suited = fresh.features[:, COLUMN["risk_tolerance"]] >= SUITED
    catalog = ADVISOR_ACTIONS.add(INCOME_PLUS)
    new = catalog.index(INCOME_PLUS.id)
    for seed in (0, 1, 2):
        logs = advisor_logs(UniformRandom(), USERS, MarketSpec(mode="bootstrap", n_days=500), seed)
        for rule, form, low, high in (
            ("linucb", "shared", 0.9, 1.0),
            ("greedy", "shared", 0.75, 1.0),
            ("greedy", "disjoint", 0.0, 0.25),
        ):
            config = BanditConfig(rule=rule, form=form, alpha=0.3)  # type: ignore[arg-type]
            learner = BanditLearner.fit(logs, config, seed=seed)
            learner.add_action(INCOME_PLUS)
            probs = learner.policy().probabilities(fresh.features, learner.catalog)
            share = float(probs[suited, new].mean())
            print(f"seed {seed} {form} {rule}: income_plus for {share:.0%} of suited users")
            assert low <= share <= high, (seed, rule, form, share)
