"""Off-policy evaluation of episodes (the pricing application): PDIS, WPDIS and FQE.

Episodes are padded arrays. Shapes: ``states`` (N, T, d); ``actions`` (N, T) indices;
``rewards`` (N, T); ``pscores`` (N, T) the logging probability of each logged action;
``target`` (N, T, k) the target policy's probabilities at each logged state; ``mask``
(N, T) true for real steps (an episode ends at its first false step).

- Per-decision importance sampling (Precup, Sutton & Singh 2000, eq. 3):
  ``V = mean_i sum_t gamma^t rho_{i,t} r_{i,t}`` with ``rho_{i,t} = prod_{s<=t} w_{i,s}``.
- Weighted PDIS (ibid., and Thomas 2015 ch. 3): each step's ratios are normalised across
  episodes, ``V = sum_t gamma^t sum_i rho_{i,t} r_{i,t} / sum_i rho_{i,t}``.
- Fitted Q evaluation (Le, Voloshin & Yue 2019, Alg. 2): regress
  ``y = r + gamma sum_a' pi(a'|s') Q_k(s', a')`` on ``(s, a)`` for K iterations; the value
  is ``mean_i sum_a pi(a|s_i0) Q_K(s_i0, a)``. The target policy is any callable
  ``pi(states (n, d)) -> (n, k)``; an MLP Q-policy's own network ``q(states) -> (n, k)``
  can seed the iteration (``initial_q``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import Ridge

from rlops.core.errors import ValidationError
from rlops.ope.estimate import FloatArray, IntArray

StatePolicy = Callable[[FloatArray], FloatArray]


@dataclass(frozen=True, slots=True)
class Episodes:
    """Checked, padded logged episodes (see the module docstring for shapes)."""

    states: FloatArray
    actions: IntArray
    rewards: FloatArray
    pscores: FloatArray
    mask: npt.NDArray[np.bool_]

    @classmethod
    def of(
        cls,
        *,
        states: npt.ArrayLike,
        actions: npt.ArrayLike,
        rewards: npt.ArrayLike,
        pscores: npt.ArrayLike,
        mask: npt.ArrayLike | None = None,
    ) -> Episodes:
        s = np.asarray(states, dtype=np.float64)
        if s.ndim != 3:
            raise ValidationError("states must be (N, T, d)", field="states")
        shape = s.shape[:2]
        a = np.asarray(actions)
        r = np.asarray(rewards, dtype=np.float64)
        p = np.asarray(pscores, dtype=np.float64)
        m = np.ones(shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        for name, array in (("actions", a), ("rewards", r), ("pscores", p), ("mask", m)):
            if array.shape != shape:
                raise ValidationError(f"{name} must be (N, T) = {shape}", field=name)
        if a.dtype.kind not in "iu":
            raise ValidationError("actions must be integer indices", field="actions")
        if not np.all(np.isfinite(r[m])) or not np.all(np.isfinite(s[m])):
            raise ValidationError("rewards and states must be finite", field="rewards")
        if np.any((p[m] <= 0.0) | (p[m] > 1.0)) or not np.all(np.isfinite(p[m])):
            raise ValidationError("pscores must lie in (0, 1]", field="pscores")
        p = np.where(m, p, 1.0)
        return cls(
            states=s, actions=a.astype(np.int64), rewards=np.where(m, r, 0.0), pscores=p, mask=m
        )

    def ratios(self, target: npt.ArrayLike) -> FloatArray:
        """Cumulative ratios ``rho_{i,t}`` (N, T) for target probabilities (N, T, k)."""
        pi = np.asarray(target, dtype=np.float64)
        if pi.shape[:2] != self.actions.shape or pi.ndim != 3:
            raise ValidationError("target must be (N, T, k)", field="target")
        if np.any(self.actions >= pi.shape[2]) or np.any(self.actions < 0):
            raise ValidationError("actions must index the target's k columns", field="actions")
        chosen = np.take_along_axis(pi, self.actions[:, :, None], axis=2)[:, :, 0]
        step = np.where(self.mask, chosen / self.pscores, 1.0)
        out: FloatArray = np.where(self.mask, np.cumprod(step, axis=1), 0.0)
        return out


def _discounts(horizon: int, gamma: float) -> FloatArray:
    if not 0.0 <= gamma <= 1.0:
        raise ValidationError("gamma must lie in [0, 1]", field="gamma")
    out: FloatArray = gamma ** np.arange(horizon, dtype=np.float64)
    return out


def pdis(episodes: Episodes, *, target: npt.ArrayLike, gamma: float = 1.0) -> FloatArray:
    """Per-episode PDIS returns (N,); their mean is the estimate (so intervals resample them)."""
    rho = episodes.ratios(target)
    out: FloatArray = (rho * episodes.rewards) @ _discounts(rho.shape[1], gamma)
    return out


def wpdis(episodes: Episodes, *, target: npt.ArrayLike, gamma: float = 1.0) -> float:
    """Weighted PDIS value; steps where every ratio is 0 contribute 0."""
    rho = episodes.ratios(target)
    totals = rho.sum(axis=0)
    safe = np.where(totals > 0.0, totals, 1.0)
    per_step = np.where(totals > 0.0, (rho * episodes.rewards).sum(axis=0) / safe, 0.0)
    return float(per_step @ _discounts(rho.shape[1], gamma))


def _features(states: FloatArray, actions: IntArray, k: int) -> FloatArray:
    onehot = np.eye(k)[actions]
    out: FloatArray = np.hstack(
        [states, onehot, (states[:, :, None] * onehot[:, None, :]).reshape(len(states), -1)]
    )
    return out


def fqe(
    episodes: Episodes,
    *,
    policy: StatePolicy,
    n_actions: int,
    gamma: float = 0.99,
    iterations: int = 50,
    alpha: float = 1.0,
    initial_q: StatePolicy | None = None,
) -> float:
    """Fitted Q evaluation with a ridge regressor on ``[s, e_a, s (x) e_a]``.

    ``policy(states (n, d)) -> (n, k)`` is the target; ``initial_q`` optionally seeds
    ``Q_0`` (e.g. the Q-network of the MLP policy being evaluated), else ``Q_0 = 0``.
    """
    _discounts(1, gamma)
    if iterations < 1:
        raise ValidationError("iterations must be at least 1", field="iterations")
    mask = episodes.mask
    states = episodes.states[mask]
    actions = episodes.actions[mask]
    rewards = episodes.rewards[mask]
    n_ep, _, dim = episodes.states.shape
    # next state of each real step, and whether it is terminal (no next real step)
    following = np.zeros_like(mask)
    following[:, :-1] = mask[:, 1:]
    next_states = np.concatenate([episodes.states[:, 1:], np.zeros((n_ep, 1, dim))], axis=1)[mask]
    alive = following[mask]
    next_pi = policy(next_states)
    x = _features(states, actions, n_actions)
    all_actions = [
        _features(next_states, np.full(len(next_states), a), n_actions) for a in range(n_actions)
    ]
    next_q = (
        initial_q(next_states) if initial_q is not None else np.zeros((len(next_states), n_actions))
    )
    model = Ridge(alpha=alpha)
    for _ in range(iterations):
        y = rewards + gamma * alive * np.sum(next_pi * next_q, axis=1)
        model.fit(x, y)
        next_q = np.column_stack([model.predict(f) for f in all_actions])
    first = episodes.states[:, 0]
    first_q = np.column_stack(
        [model.predict(_features(first, np.full(n_ep, a), n_actions)) for a in range(n_actions)]
    )
    return float(np.mean(np.sum(policy(first) * first_q, axis=1)))
