"""How a ridge bandit turns its estimates into action probabilities, as pure functions.

Every rule returns real propensities, rows over the requested actions summing to 1, so a
bandit's decisions are as evaluable off-policy as any other policy's:

- ``greedy``: one-hot on the highest estimate ``theta . x``.
- ``epsilon_greedy``: ``1 - epsilon`` on the greedy action, ``epsilon / k`` on each.
- ``linucb``: one-hot on ``theta . x + alpha * sqrt(x^T A^{-1} x)`` (Li et al. 2010,
  "A contextual-bandit approach to personalized news article recommendation", Alg. 1).
- ``thompson``: the frequency with which each action is the argmax under ``M`` posterior
  draws ``theta ~ N(theta_hat, v^2 A^{-1})`` (Agrawal & Goyal 2013, "Thompson sampling
  for contextual bandits with linear payoffs"). The draws are fixed per policy and
  catalog, from the policy's seed, so the same context always gets the same
  probabilities and a row's probabilities do not depend on the rest of its batch; the
  randomness of Thompson sampling is then the one draw from these probabilities that
  the caller (the explorer, ``act``) makes and logs. ``M`` sets the propensity
  resolution: every probability is a multiple of ``1 / M``.
- ``squarecb``: inverse-gap weighting (Foster & Rakhlin 2020, "Beyond UCB: optimal and
  efficient contextual bandits with regression oracles", eq. (4)): for each action other
  than the best, ``p_a = 1 / (k + gamma * (yhat_best - yhat_a))``; the best gets the
  rest. A large ``gamma`` exploits, ``gamma = 0`` is uniform.

Ties go to the first action in catalog order, as :func:`~rlops.policies.contract.greedy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rlops.core.errors import ValidationError
from rlops.policies.contract import Probs, greedy

Array = npt.NDArray[np.float64]
Rule = Literal["greedy", "epsilon_greedy", "linucb", "thompson", "squarecb"]
RULES: tuple[Rule, ...] = ("greedy", "epsilon_greedy", "linucb", "thompson", "squarecb")

# Rows of a Thompson batch evaluated at once: bounds the (rows, M, k) score block.
_THOMPSON_BLOCK = 1 << 21


def _positive_finite(value: float, name: str, *, allow_zero: bool) -> None:
    ok = np.isfinite(value) and (value >= 0.0 if allow_zero else value > 0.0)
    if not ok:
        bound = "non-negative" if allow_zero else "positive"
        raise ValidationError(f"{name} must be finite and {bound}, got {value!r}", field=name)


@dataclass(frozen=True, slots=True)
class DecisionRule:
    """A rule and its settings. ``seed`` fixes the Thompson posterior draws."""

    kind: Rule = "linucb"
    alpha: float = 1.0
    epsilon: float = 0.1
    squarecb_gamma: float = 50.0
    thompson_scale: float = 1.0
    thompson_samples: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise ValidationError(f"unknown rule {self.kind!r}; known {list(RULES)}", field="rule")
        _positive_finite(self.alpha, "alpha", allow_zero=True)
        _positive_finite(self.squarecb_gamma, "squarecb_gamma", allow_zero=True)
        _positive_finite(self.thompson_scale, "thompson_scale", allow_zero=True)
        if not (np.isfinite(self.epsilon) and 0.0 <= self.epsilon <= 1.0):
            raise ValidationError(
                f"epsilon must lie in [0, 1], got {self.epsilon!r}", field="epsilon"
            )
        samples = self.thompson_samples
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValidationError(
                f"thompson_samples must be a positive integer, got {samples!r}",
                field="thompson_samples",
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValidationError(
                f"seed must be a non-negative integer, got {self.seed!r}", field="seed"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "alpha": self.alpha,
            "epsilon": self.epsilon,
            "squarecb_gamma": self.squarecb_gamma,
            "thompson_scale": self.thompson_scale,
            "thompson_samples": self.thompson_samples,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DecisionRule:
        return cls(
            kind=data["kind"],
            alpha=float(data["alpha"]),
            epsilon=float(data["epsilon"]),
            squarecb_gamma=float(data["squarecb_gamma"]),
            thompson_scale=float(data["thompson_scale"]),
            thompson_samples=data["thompson_samples"],
            seed=data["seed"],
        )


def epsilon_greedy(mean: Array, epsilon: float) -> Probs:
    """``(1 - epsilon)`` one-hot on each row's best estimate plus ``epsilon / k`` everywhere."""
    k = mean.shape[1]
    out: Probs = (1.0 - epsilon) * greedy(mean) + epsilon / k
    return out


def upper_confidence(mean: Array, width: Array, alpha: float) -> Array:
    """LinUCB's index ``theta . x + alpha * sqrt(x^T A^{-1} x)``, shape ``(n, k)``."""
    out: Array = mean + alpha * width
    return out


def inverse_gap(mean: Array, gamma: float) -> Probs:
    """SquareCB's inverse-gap weights over ``mean (n, k)``.

    ``p_a = 1 / (k + gamma * gap_a)`` with ``gap_a = yhat_best - yhat_a >= 0`` for every
    action except the best (the first maximum), which gets ``1 - sum`` of the others.
    Each non-best ``p_a <= 1 / k``, so the best keeps at least ``1 / k``.
    """
    n, k = mean.shape
    best = np.argmax(mean, axis=1)
    gap = mean[np.arange(n), best][:, None] - mean
    out: Probs = 1.0 / (k + gamma * gap)
    out[np.arange(n), best] = 0.0
    out[np.arange(n), best] = 1.0 - out.sum(axis=1)
    return out


def argmax_frequencies(z1: Array, thetas: Array) -> Probs:
    """How often each action is best across posterior draws.

    ``z1 (n, q)`` are augmented contexts, ``thetas (M, k, q)`` one parameter vector per
    draw and action; row ``i`` of the result is the share of the ``M`` draws under which
    ``z1_i . thetas[s, a]`` is largest at ``a``. Rows are done in blocks so the
    ``(rows, M, k)`` scores stay bounded in memory.
    """
    n = z1.shape[0]
    m, k, _ = thetas.shape
    out = np.zeros((n, k))
    flat_thetas = np.ascontiguousarray(thetas.reshape(m * k, -1).T)  # (q, M k): one GEMM
    block = max(1, _THOMPSON_BLOCK // (m * k))
    for start in range(0, n, block):  # blocks of rows, not a loop per row
        rows = z1[start : start + block]
        values = (rows @ flat_thetas).reshape(len(rows), m, k)
        best = np.argmax(values, axis=2)  # (rows, M)
        flat = best + k * np.arange(len(rows))[:, None]
        counts = np.bincount(flat.ravel(), minlength=len(rows) * k)
        out[start : start + block] = counts.reshape(len(rows), k) / m
    return out


def decide(rule: DecisionRule, mean: Array, width: Array) -> Probs:
    """Probabilities for every rule except Thompson sampling (which needs draws)."""
    if rule.kind == "greedy":
        return greedy(mean)
    if rule.kind == "epsilon_greedy":
        return epsilon_greedy(mean, rule.epsilon)
    if rule.kind == "linucb":
        return greedy(upper_confidence(mean, width, rule.alpha))
    if rule.kind == "squarecb":
        return inverse_gap(mean, rule.squarecb_gamma)
    raise ValidationError(f"rule {rule.kind!r} needs posterior draws", field="rule")
