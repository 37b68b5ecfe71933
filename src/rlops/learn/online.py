"""A bandit learning online in the advisor simulator: act, observe, update, every day.

Each trading day every user gets a recommendation from the learner's latest snapshot;
the day's rewards are scored (:func:`~rlops.sim.vector_reward.vector_reward`) and folded
in before the next day. The simulator computes a decision's reward from the next
``window_days`` of market returns, so this loop treats every reward window as already
elapsed: it is the optimistic, no-delay limit of the production loop (where a reward
joins ``window_days`` later), and is meant for comparing learners on equal terms, not
for estimating live performance. The world's generator is the one
:func:`~rlops.sim.rollout.advisor_run` derives from ``seed``, so two learners (or a
learner and a rule engine) on one seed meet the same users and markets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.learn.bandits import BanditLearner
from rlops.policies.bandit import BanditPolicy
from rlops.policies.contract import Features, Probs
from rlops.rewards.seeds import advisor_reward
from rlops.rewards.spec import RewardFunction
from rlops.sim.advisor_core import ADVISOR_ACTIONS, AdvisorConfig
from rlops.sim.baselines import Policy
from rlops.sim.market_data import MarketSpec
from rlops.sim.rollout import advisor_run
from rlops.sim.vector_reward import vector_reward


@dataclass(frozen=True, eq=False)
class OnlineRun:
    """Per day and user: ``features (days, n, d)``, ``actions (days, n)`` catalog indices,
    ``propensities (days, n)``, ``rewards (days, n)``."""

    features: npt.NDArray[np.float32]
    actions: npt.NDArray[np.int64]
    propensities: npt.NDArray[np.float64]
    rewards: npt.NDArray[np.float64]

    @property
    def mean_reward(self) -> float:
        return float(self.rewards.mean())


class _Latest:
    """The policy the simulator calls: the learner's snapshot as of the last update."""

    def __init__(self, policy: BanditPolicy) -> None:
        self.policy = policy

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs:
        return self.policy.probabilities(features, actions)


def advisor_online(
    actor: BanditLearner | Policy,
    config: AdvisorConfig,
    market: MarketSpec,
    seed: int,
    *,
    max_days: int | None = None,
    catalog: ActionCatalog = ADVISOR_ACTIONS,
    reward: RewardFunction = advisor_reward,
) -> OnlineRun:
    """Run ``actor`` over the simulated days: a learner acts from its latest snapshot and
    learns each day's rewards (keeping its state afterwards, over its own catalog); any
    other policy just acts (the rule engines, for comparison), over ``catalog``."""
    learner: BanditLearner | None = None
    latest: _Latest | None = None
    acting: Policy
    if isinstance(actor, BanditLearner):
        learner, latest = actor, _Latest(actor.policy())
        acting, actions = latest, actor.catalog
    else:
        acting, actions = actor, catalog
    feats, acts, props, rews = [], [], [], []
    for step in advisor_run(acting, config, market, seed, max_days=max_days, catalog=actions):
        assert step.advisor is not None
        r = vector_reward(reward, step.advisor.signals)
        if learner is not None and latest is not None:
            learner.update(step.features, step.actions, r)
            latest.policy = learner.policy()
        feats.append(step.features)
        acts.append(step.actions)
        props.append(step.propensities)
        rews.append(r)
    return OnlineRun(np.stack(feats), np.stack(acts), np.stack(props), np.stack(rews))
