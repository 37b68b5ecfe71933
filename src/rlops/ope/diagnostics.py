"""Diagnostics that refuse to lie: is there enough overlapping data to trust an estimate?

Importance-weighted estimates are only as good as the logged data's overlap with the
target policy. :func:`diagnose` reports

- ``ess``: Kish's effective sample size of the importance weights, and its share of n;
- ``support``: the share of logged events whose action the target policy could have
  taken (``pi_e(a_i|x_i) > 0``), the events that inform IPS at all;
- ``unsupported_mass``: where the full logging distribution is known, the average mass
  the target policy puts on actions the logger never takes (no estimator can see those
  without a model; DM/DR extrapolate);
- ``max_weight``: the largest importance weight;

and a verdict, ``ok``, ``low-support`` or ``too-few-events``, with its reason. The
registry's gate decides only on ``ok``. Thresholds are a frozen config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from rlops.core.errors import ValidationError
from rlops.ope.estimate import BanditInputs, effective_sample_size

Verdict = Literal["ok", "low-support", "too-few-events"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """When an evaluation is too thin to act on.

    ``min_events``: fewer logged events is ``too-few-events``. ``min_supported_events``:
    fewer events with ``pi_e(a_i|x_i) > 0`` is ``too-few-events`` too. ``min_ess``:
    an effective sample size below it is ``low-support``, as is ``ess / n`` below
    ``min_ess_share`` or an unsupported mass above ``max_unsupported_mass``.
    """

    min_events: int = 100
    min_supported_events: int = 30
    min_ess: float = 30.0
    min_ess_share: float = 0.01
    max_unsupported_mass: float = 0.01

    def __post_init__(self) -> None:
        if self.min_events < 1 or self.min_supported_events < 0 or self.min_ess < 0.0:
            raise ValidationError("thresholds must be non-negative counts", field="thresholds")
        if not 0.0 <= self.min_ess_share <= 1.0 or not 0.0 <= self.max_unsupported_mass <= 1.0:
            raise ValidationError("threshold shares must lie in [0, 1]", field="thresholds")


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """Overlap diagnostics of one target policy on one log, with a verdict and its reason."""

    n: int
    ess: float
    ess_share: float
    support: float
    supported_events: int
    unsupported_mass: float | None
    max_weight: float
    verdict: Verdict
    reason: str

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def to_json(self) -> dict[str, object]:
        return {
            "n": self.n,
            "ess": self.ess,
            "ess_share": self.ess_share,
            "support": self.support,
            "supported_events": self.supported_events,
            "unsupported_mass": self.unsupported_mass,
            "max_weight": self.max_weight,
            "verdict": self.verdict,
            "reason": self.reason,
        }


def diagnose(
    data: BanditInputs,
    *,
    logging_dist: npt.ArrayLike | None = None,
    thresholds: Thresholds | None = None,
) -> Diagnostics:
    """Overlap diagnostics of ``data.action_dist`` against the log.

    ``logging_dist`` (n, k), when known, is the logging policy's full distribution; it
    enables ``unsupported_mass = mean_i sum_a pi_e(a|x_i) 1[pi_b(a|x_i) = 0]``.
    """
    limits = thresholds if thresholds is not None else Thresholds()
    w = data.weights()
    n = data.n
    ess = effective_sample_size(w)
    supported = int(np.count_nonzero(data.action_dist[np.arange(n), data.action] > 0.0))
    unsupported: float | None = None
    if logging_dist is not None:
        pi_b = np.asarray(logging_dist, dtype=np.float64)
        if pi_b.shape != data.action_dist.shape:
            raise ValidationError(
                f"logging_dist has shape {pi_b.shape}, action_dist has {data.action_dist.shape}",
                field="logging_dist",
            )
        unsupported = float(np.mean(np.sum(data.action_dist * (pi_b <= 0.0), axis=1)))

    verdict: Verdict = "ok"
    reason = f"{n} events, ESS {ess:.1f} ({ess / n:.1%}), support {supported / n:.1%}"
    if n < limits.min_events:
        verdict, reason = "too-few-events", f"{n} events < {limits.min_events}"
    elif supported < limits.min_supported_events:
        verdict = "too-few-events"
        reason = (
            f"only {supported} events took an action the target policy could take "
            f"(< {limits.min_supported_events})"
        )
    elif unsupported is not None and unsupported > limits.max_unsupported_mass:
        verdict = "low-support"
        reason = (
            f"the target puts {unsupported:.1%} of its mass on actions the logger never "
            f"takes (> {limits.max_unsupported_mass:.1%})"
        )
    elif ess < limits.min_ess:
        verdict, reason = "low-support", f"effective sample size {ess:.1f} < {limits.min_ess:g}"
    elif ess / n < limits.min_ess_share:
        verdict = "low-support"
        reason = f"effective sample share {ess / n:.2%} < {limits.min_ess_share:.2%}"
    return Diagnostics(
        n=n,
        ess=ess,
        ess_share=ess / n,
        support=supported / n,
        supported_events=supported,
        unsupported_mass=unsupported,
        max_weight=float(w.max()),
        verdict=verdict,
        reason=reason,
    )
