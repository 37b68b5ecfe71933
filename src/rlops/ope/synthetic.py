"""A small synthetic contextual bandit with a known true policy value, for tests and benches.

Contexts ``x ~ N(0, I_d)``; each action ``a`` has a parameter ``theta_a`` and a mean
reward ``mu(x, a) = sigmoid(x . theta_a + b_a)``; rewards are Bernoulli(mu). The logging
policy is a softmax over a noisy copy of the scores mixed with 30% uniform, so every
action has probability at least ``0.3 / k``. The true value of a target policy is
``E_x[sum_a pi_e(a|x) mu(x, a)]``, computed on a large independent draw of contexts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rlops.ope.estimate import FloatArray, IntArray

Policy = Callable[[FloatArray], FloatArray]


@dataclass(frozen=True, slots=True)
class SyntheticLog:
    """One logged sample. Shapes: context (n, d); action, reward, pscore (n,);
    pi_b and expected_reward (n, k)."""

    context: FloatArray
    action: IntArray
    reward: FloatArray
    pscore: FloatArray
    pi_b: FloatArray
    expected_reward: FloatArray


def _softmax(scores: FloatArray) -> FloatArray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    out: FloatArray = shifted / shifted.sum(axis=1, keepdims=True)
    return out


@dataclass(frozen=True, slots=True)
class SyntheticBandit:
    """An environment fixed by ``seed``: ``n_actions`` actions over ``dim``-d contexts."""

    n_actions: int = 5
    dim: int = 3
    seed: int = 0

    def _params(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        rng = np.random.default_rng([self.seed, 1])
        theta = rng.normal(0.0, 1.0, size=(self.dim, self.n_actions))
        bias = rng.normal(0.0, 0.5, size=self.n_actions)
        noise = rng.normal(0.0, 1.0, size=(self.dim, self.n_actions))
        return theta, bias, noise

    def expected_reward(self, context: FloatArray) -> FloatArray:
        """``mu(x, a)`` for every row and action, (n, k)."""
        theta, bias, _ = self._params()
        out: FloatArray = 1.0 / (1.0 + np.exp(-(context @ theta + bias)))
        return out

    def logging_policy(self, context: FloatArray) -> FloatArray:
        theta, bias, noise = self._params()
        greedy = _softmax(context @ (0.5 * theta + noise) + bias)
        return 0.7 * greedy + 0.3 / self.n_actions

    def egreedy_policy(self, epsilon: float) -> Policy:
        """The epsilon-greedy policy on the true mean rewards."""

        def policy(context: FloatArray) -> FloatArray:
            mu = self.expected_reward(context)
            out = np.full_like(mu, epsilon / self.n_actions)
            out[np.arange(mu.shape[0]), mu.argmax(axis=1)] += 1.0 - epsilon
            return out

        return policy

    def sample(self, n: int, *, seed: int) -> SyntheticLog:
        rng = np.random.default_rng([self.seed, 2, seed])
        context = rng.normal(size=(n, self.dim))
        pi_b = self.logging_policy(context)
        cumulative = pi_b.cumsum(axis=1)
        action = (rng.random((n, 1)) > cumulative).sum(axis=1).clip(0, self.n_actions - 1)
        mu = self.expected_reward(context)
        rows = np.arange(n)
        reward = (rng.random(n) < mu[rows, action]).astype(np.float64)
        return SyntheticLog(
            context=context,
            action=action.astype(np.int64),
            reward=reward,
            pscore=pi_b[rows, action],
            pi_b=pi_b,
            expected_reward=mu,
        )

    def true_value(self, policy: Policy, *, n: int = 200_000) -> float:
        """``E_x[sum_a pi(a|x) mu(x, a)]`` on ``n`` fresh contexts (error ~ 1e-3 / sqrt(n/1e5))."""
        rng = np.random.default_rng([self.seed, 3])
        context = rng.normal(size=(n, self.dim))
        return float(np.mean(np.sum(policy(context) * self.expected_reward(context), axis=1)))
