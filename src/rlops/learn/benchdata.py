"""The logged data sets that learning checks and benchmarks share.

Offline RL needs a logging policy that explores: a deterministic incumbent logs one
action per state, and no learner can tell what the others would have done. Both sets
here log a sensible but imperfect controller mixed with uniform exploration
(:class:`EpsilonMix`), as a production system with an epsilon explorer would:

- CartPole (Gymnasium ``CartPole-v1``): a hand-made balancer, one unit per episode;
- pricing: the rule engine (:class:`~rlops.sim.baselines.PricingRules`) on the pricing
  simulator, one unit per product.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from rlops.core.actions import Action, ActionCatalog
from rlops.core.errors import ValidationError
from rlops.core.features import Feature, FeatureSchema
from rlops.learn.data import LoggedData
from rlops.learn.simdata import pricing_logs
from rlops.policies.contract import Features, Policy, Probs
from rlops.sim.baselines import PricingRules, act
from rlops.sim.pricing_core import PRICING_SCHEMA, PricingConfig

CARTPOLE_SCHEMA = FeatureSchema.of(
    [
        Feature("cart_position"),
        Feature("cart_velocity"),
        Feature("pole_angle", description="radians from upright"),
        Feature("pole_angular_velocity"),
    ]
)
CARTPOLE_ACTIONS = ActionCatalog.of([Action("push_left"), Action("push_right")])


@dataclass(frozen=True)
class EpsilonMix:
    """``(1 − ε) π(a|s) + ε / k``: the base policy with uniform exploration mixed in."""

    base: Policy
    epsilon: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValidationError("epsilon must lie in [0, 1]", field="epsilon")

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs:
        base = self.base.probabilities(features, actions)
        out: Probs = (1.0 - self.epsilon) * base + self.epsilon / len(actions)
        return out


@dataclass(frozen=True)
class CartPoleBalancer:
    """Push towards where the pole is falling: right when ``θ + lag · θ̇ > 0``.

    A fair controller (it balances for a while, then drifts off the track), so there
    is room to learn better from its logs.
    """

    lag: float = 0.0

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs:
        right = features[:, 2] + self.lag * features[:, 3] > 0.0
        out = np.zeros((len(features), 2))
        out[np.arange(len(features)), right.astype(np.int64)] = 1.0
        return out


def cartpole_logs(policy: Policy, episodes: int, seed: int) -> LoggedData:
    """``episodes`` CartPole-v1 episodes under ``policy``; reward 1 per step survived.

    Episode ``i`` starts from ``env.reset(seed=seed + i)``; actions are sampled with a
    generator seeded by ``seed``. A time-limit end is logged as terminal like a fall
    (the log cannot tell them apart), which only matters at 500 steps.
    """
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(seed)
    feats: list[npt.NDArray[np.float32]] = []
    acts: list[int] = []
    props: list[float] = []
    units: list[str] = []
    ts: list[float] = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        for t in range(10_000):
            x = np.asarray(obs, dtype=np.float32)[None, :]
            index, propensity = act(policy, x, CARTPOLE_ACTIONS, rng)
            feats.append(x[0])
            acts.append(int(index[0]))
            props.append(float(propensity[0]))
            units.append(f"episode-{episode}")
            ts.append(float(t))
            obs, _, terminated, truncated, _ = env.step(int(index[0]))
            if terminated or truncated:
                break
    env.close()
    n = len(acts)
    return LoggedData(
        features=np.asarray(feats, dtype=np.float32).reshape(n, 4),
        actions=np.asarray(acts, dtype=np.int64),
        propensities=np.asarray(props),
        rewards=np.ones(n),
        allowed=np.ones((n, 2), dtype=bool),
        unit_ids=np.asarray(units, dtype=np.str_),
        ts=np.asarray(ts),
        schema=CARTPOLE_SCHEMA,
        catalog=CARTPOLE_ACTIONS,
    )


def cartpole_returns(policy: Policy, episodes: int, seed: int) -> npt.NDArray[np.float64]:
    """Undiscounted return of each of ``episodes`` greedy episodes of ``policy``."""
    env = gym.make("CartPole-v1")
    returns = np.zeros(episodes)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            x = np.asarray(obs, dtype=np.float32)[None, :]
            action = int(policy.probabilities(x, CARTPOLE_ACTIONS).argmax(axis=1)[0])
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[episode] += float(reward)
            done = terminated or truncated
    env.close()
    return returns


def pricing_rule_logs(
    products: int, seed: int, *, epsilon: float = 0.3, config: PricingConfig | None = None
) -> LoggedData:
    """The pricing rule engine with ``epsilon`` exploration, one clearance window."""
    world = (config or PricingConfig()).with_products(products)
    return pricing_logs(EpsilonMix(PricingRules(PRICING_SCHEMA), epsilon), world, seed)
