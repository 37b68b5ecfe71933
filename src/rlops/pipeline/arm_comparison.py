"""Canary minus production: the difference of mean rewards per decision, with an interval.

Arms are assigned per unit (sticky), so one unit's decisions are not independent: a
product on the canary is seen hundreds of times and its own demand moves all of them.
Treating decisions as independent would make the interval far too narrow. Units are the
independent draws, so each arm's mean is a ratio estimator (sum of rewards over count of
decisions, both summed per unit) and its variance comes from the delta method over units
(the cluster-robust standard error):

    mean = sum_u S_u / sum_u N_u
    var  = n / (n - 1) * sum_u (S_u - mean * N_u)^2 / (sum_u N_u)^2

with ``n`` units. The difference's interval uses Student's t with Welch-Satterthwaite
degrees of freedom over the two arms' unit counts: a canary of a dozen units gets the
wide interval it deserves. With one decision per unit this is Welch's t interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from rlops.core.errors import ValidationError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ArmMean:
    """One arm's mean reward per decision and its cluster-robust variance."""

    mean: float
    variance: float
    decisions: int
    units: int

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "variance": self.variance,
            "decisions": self.decisions,
            "units": self.units,
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """``canary - production`` with its two-sided interval at ``level``."""

    difference: float
    low: float
    high: float
    level: float
    canary: ArmMean
    production: ArmMean

    def to_json(self) -> dict[str, Any]:
        return {
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "canary": self.canary.to_json(),
            "production": self.production.to_json(),
        }


def arm_mean(rewards: FloatArray, units: Sequence[str] | npt.NDArray[Any]) -> ArmMean:
    """The ratio-estimator mean of ``rewards`` clustered by ``units`` (needs two units)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    labels = np.asarray(units)
    if rewards.ndim != 1 or labels.shape != rewards.shape:
        raise ValidationError("rewards and units must be 1-d and of one length", field="units")
    if not np.isfinite(rewards).all():
        raise ValidationError("rewards must be finite", field="rewards")
    _, index = np.unique(labels, return_inverse=True)
    sums = np.bincount(index, weights=rewards)
    counts = np.bincount(index).astype(np.float64)
    n = len(sums)
    if n < 2:
        raise ValidationError(f"an arm needs at least 2 units, got {n}", field="units")
    total = counts.sum()
    mean = float(sums.sum() / total)
    residual = sums - mean * counts
    variance = float(n / (n - 1) * np.sum(residual**2) / total**2)
    return ArmMean(mean=mean, variance=variance, decisions=int(total), units=n)


def compare_arms(canary: ArmMean, production: ArmMean, *, level: float = 0.95) -> Comparison:
    """The difference of means with a Welch-Satterthwaite t interval over units."""
    if not 0.0 < level < 1.0:
        raise ValidationError("level must lie in (0, 1)", field="level")
    difference = canary.mean - production.mean
    va, vb = canary.variance, production.variance
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Comparison(difference, difference, difference, level, canary, production)
    dof = (va + vb) ** 2 / (va**2 / (canary.units - 1) + vb**2 / (production.units - 1))
    half = float(stats.t.ppf(0.5 + level / 2.0, dof)) * se
    return Comparison(difference, difference - half, difference + half, level, canary, production)
