"""Inverse propensity scoring, optionally clipped (Horvitz & Thompson 1952; Strehl et al. 2010).

    V_IPS = mean_i( min(w_i, lambda) * r_i ),   w_i = pi_e(a_i|x_i) / pi_b(a_i|x_i)

Unbiased without clipping when the logging policy covers the target policy; clipping at
``lambda`` trades bias for variance (obp's ``InverseProbabilityWeighting(lambda_=...)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlops.core.errors import ValidationError
from rlops.ope.estimate import BanditInputs, FloatArray, Terms


def removed_mass(raw: FloatArray, applied: FloatArray) -> float:
    """Share of the raw importance mass that clipping or shrinkage removed."""
    total = float(np.sum(raw))
    return 0.0 if total == 0.0 else float(np.sum(raw - applied)) / total


def check_lambda(value: float, field: str) -> float:
    if math.isnan(value) or value < 0.0:
        raise ValidationError(f"{field} must be a non-negative number, got {value!r}", field=field)
    return float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class IPS:
    """Inverse propensity scoring; ``clip`` is the weight cap ``lambda`` (``None``: no cap)."""

    clip: float | None = None

    def __post_init__(self) -> None:
        if self.clip is not None:
            check_lambda(self.clip, "clip")

    @property
    def name(self) -> str:
        return "ips" if self.clip is None else f"clipped-ips(lambda={self.clip:g})"

    def terms(self, data: BanditInputs) -> Terms:
        w = data.weights()
        applied = w if self.clip is None else np.minimum(w, self.clip)
        return Terms(
            direct=applied * data.reward,
            numerator=None,
            denominator=None,
            weights=applied,
            clipped_mass=removed_mass(w, applied),
        )
