"""The shared shape of off-policy estimation: checked inputs, per-sample terms, estimates.

Every estimator in :mod:`rlops.ope` follows the Open Bandit Pipeline's pattern: a small
frozen dataclass whose :meth:`terms` is a pure per-sample computation over the logged
arrays, and whose value is a mean over those terms. Self-normalised estimators add one
ratio of sums, so the general form is

    V = mean(direct) + sum(numerator) / sum(denominator)

with either part optional. An interval resamples the same per-sample vectors
(:mod:`rlops.ope.intervals`), so the point estimate and its interval cannot disagree on
what is being estimated.

Notation (Dudík et al. 2014; Saito et al. 2021, "Open Bandit Dataset and Pipeline"):
``x_i`` a logged context, ``a_i`` the logged action, ``r_i`` its reward,
``pi_b(a_i|x_i)`` the logged propensity, ``pi_e(.|x_i)`` the target policy,
``w_i = pi_e(a_i|x_i) / pi_b(a_i|x_i)`` the importance weight, ``q(x_i, a)`` a reward model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from rlops.core.errors import ValidationError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Rows of a probability matrix may differ from 1 by at most this much.
ROW_SUM_TOLERANCE = 1e-6


def _float_array(value: object, name: str, ndim: int) -> FloatArray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be numeric", field=name) from None
    if array.ndim != ndim:
        raise ValidationError(
            f"{name} must have {ndim} dimension(s), got shape {array.shape}", field=name
        )
    if not np.all(np.isfinite(array)):
        raise ValidationError(f"{name} contains NaN or infinite values", field=name)
    return array


@dataclass(frozen=True, slots=True)
class BanditInputs:
    """Checked arrays of one logged bandit dataset and one target policy.

    Shapes: ``reward`` (n,), ``pscore`` (n,) the logging probability of the logged
    action, in (0, 1]; ``action`` (n,) integer indices in [0, k); ``action_dist`` (n, k)
    the target policy's probabilities, rows summing to 1; ``q_hat`` (n, k) reward-model
    predictions or ``None``. Build with :meth:`of`, which validates and raises
    :class:`~rlops.core.errors.ValidationError` naming the offending field.
    """

    reward: FloatArray
    pscore: FloatArray
    action: IntArray
    action_dist: FloatArray
    q_hat: FloatArray | None = None

    @classmethod
    def of(
        cls,
        *,
        reward: npt.ArrayLike,
        pscore: npt.ArrayLike,
        action: npt.ArrayLike,
        action_dist: npt.ArrayLike,
        q_hat: npt.ArrayLike | None = None,
    ) -> BanditInputs:
        r = _float_array(reward, "reward", 1)
        n = r.shape[0]
        if n == 0:
            raise ValidationError("the log is empty", field="reward")
        p = _float_array(pscore, "pscore", 1)
        if p.shape != (n,):
            raise ValidationError(f"pscore has shape {p.shape}, reward has ({n},)", field="pscore")
        if np.any(p <= 0.0) or np.any(p > 1.0):
            raise ValidationError("pscore must lie in (0, 1]", field="pscore")
        raw_action = np.asarray(action)
        if raw_action.shape != (n,):
            raise ValidationError(
                f"action has shape {raw_action.shape}, reward has ({n},)", field="action"
            )
        if raw_action.dtype.kind not in "iu":
            raise ValidationError("action must hold integer indices", field="action")
        a = raw_action.astype(np.int64)
        dist = _float_array(action_dist, "action_dist", 2)
        if dist.shape[0] != n:
            raise ValidationError(
                f"action_dist has {dist.shape[0]} rows, reward has {n}", field="action_dist"
            )
        k = dist.shape[1]
        if np.any(a < 0) or np.any(a >= k):
            raise ValidationError(f"action indices must lie in [0, {k})", field="action")
        if np.any(dist < 0.0) or np.any(dist > 1.0):
            raise ValidationError("action_dist entries must lie in [0, 1]", field="action_dist")
        sums = dist.sum(axis=1)
        if np.any(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE):
            worst = int(np.argmax(np.abs(sums - 1.0)))
            raise ValidationError(
                f"action_dist rows must sum to 1 (row {worst} sums to {sums[worst]:.6g})",
                field="action_dist",
            )
        q: FloatArray | None = None
        if q_hat is not None:
            q = _float_array(q_hat, "q_hat", 2)
            if q.shape != dist.shape:
                raise ValidationError(
                    f"q_hat has shape {q.shape}, action_dist has {dist.shape}", field="q_hat"
                )
        return cls(reward=r, pscore=p, action=a, action_dist=dist, q_hat=q)

    @property
    def n(self) -> int:
        return int(self.reward.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.action_dist.shape[1])

    def weights(self) -> FloatArray:
        """Importance weights ``w_i = pi_e(a_i|x_i) / pscore_i``, shape (n,)."""
        rows = np.arange(self.n)
        return self.action_dist[rows, self.action] / self.pscore

    def require_q_hat(self, estimator: str) -> FloatArray:
        if self.q_hat is None:
            raise ValidationError(f"{estimator} needs reward-model predictions", field="q_hat")
        return self.q_hat

    def q_logged(self, estimator: str) -> FloatArray:
        """``q(x_i, a_i)``, shape (n,)."""
        q = self.require_q_hat(estimator)
        return q[np.arange(self.n), self.action]

    def q_expected(self, estimator: str) -> FloatArray:
        """The direct-method term ``sum_a pi_e(a|x_i) q(x_i, a)``, shape (n,)."""
        q = self.require_q_hat(estimator)
        expected: FloatArray = np.einsum("ij,ij->i", self.action_dist, q)
        return expected


@dataclass(frozen=True, slots=True)
class Terms:
    """Per-sample terms of one estimate: ``V = mean(direct) + sum(numerator)/sum(denominator)``.

    Arrays are (n,). ``weights`` are the importance weights the estimator actually
    applied (after clipping or shrinkage), for the effective sample size;
    ``clipped_mass`` is the share of raw importance mass removed by clipping, switching
    or shrinkage (0 where nothing was removed).
    """

    direct: FloatArray | None
    numerator: FloatArray | None
    denominator: FloatArray | None
    weights: FloatArray | None
    clipped_mass: float = 0.0

    def __post_init__(self) -> None:
        if self.direct is None and self.numerator is None:
            raise ValidationError("terms need a direct part or a ratio part", field="terms")
        if (self.numerator is None) != (self.denominator is None):
            raise ValidationError(
                "a ratio needs both numerator and denominator", field="denominator"
            )

    @property
    def n(self) -> int:
        part = self.direct if self.direct is not None else self.numerator
        assert part is not None  # guaranteed by __post_init__
        return int(part.shape[0])

    @property
    def is_ratio(self) -> bool:
        return self.numerator is not None

    def value(self) -> float:
        total = 0.0
        if self.direct is not None:
            total += float(np.mean(self.direct))
        if self.numerator is not None and self.denominator is not None:
            total += float(np.sum(self.numerator) / np.sum(self.denominator))
        return total

    def influence(self) -> FloatArray:
        """The linearised per-sample vector whose mean is the value (delta method).

        For a plain mean it is ``direct`` itself; a ratio ``S_num / S_den`` contributes
        ``(num_i - R den_i) / mean(den) + R``, so that its variance is the delta-method
        variance of the ratio.
        """
        out = np.zeros(self.n) if self.direct is None else self.direct.astype(np.float64)
        if self.numerator is not None and self.denominator is not None:
            ratio = float(np.sum(self.numerator) / np.sum(self.denominator))
            out = out + (self.numerator - ratio * self.denominator) / np.mean(self.denominator)
            out = out + ratio
        return out

    def ess(self) -> float:
        """Kish's effective sample size ``(sum w)^2 / sum w^2`` of the applied weights."""
        if self.weights is None:
            return float(self.n)
        return effective_sample_size(self.weights)


def effective_sample_size(weights: FloatArray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``; 0 when every weight is 0."""
    square = float(np.sum(weights * weights))
    return 0.0 if square == 0.0 else float(np.sum(weights)) ** 2 / square


IntervalMethod = Literal["bootstrap", "normal", "bernstein", "none"]


@dataclass(frozen=True, slots=True)
class Estimate:
    """One estimator's value with its interval at ``level`` (e.g. 0.95).

    ``ess`` is the effective sample size of the importance weights the estimator applied;
    ``clipped_mass`` the share of importance mass removed by clipping or switching;
    ``method`` how ``[low, high]`` was computed.
    """

    estimator: str
    value: float
    low: float
    high: float
    level: float
    method: IntervalMethod
    ess: float
    clipped_mass: float
    n: int

    def to_json(self) -> dict[str, object]:
        return {
            "estimator": self.estimator,
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "method": self.method,
            "ess": self.ess,
            "clipped_mass": self.clipped_mass,
            "n": self.n,
        }


class Estimator(Protocol):
    """An off-policy estimator: a name and a pure per-sample computation."""

    @property
    def name(self) -> str: ...

    def terms(self, data: BanditInputs) -> Terms:
        """The per-sample terms over ``data`` (see :class:`Terms`)."""
        ...
