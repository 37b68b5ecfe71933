"""Doubly robust with optimistic shrinkage (Su, Dimakopoulou, Krishnamurthy & Dudík 2020, eq. 8).

    w~_i = lambda w_i / (w_i^2 + lambda)
    V_DRos = mean_i( sum_a pi_e(a|x_i) q(x_i, a) + w~_i (r_i - q(x_i, a_i)) )

Shrinks large weights smoothly toward 0. ``lambda = inf`` is DR, ``lambda = 0`` is DM.
Matches obp's ``DoublyRobustWithShrinkage``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlops.ope.estimate import BanditInputs, Terms
from rlops.ope.ips import check_lambda, removed_mass


@dataclass(frozen=True, slots=True, kw_only=True)
class DROS:
    """DR with optimistic shrinkage of strength ``shrinkage`` (the paper's lambda)."""

    shrinkage: float

    def __post_init__(self) -> None:
        check_lambda(self.shrinkage, "shrinkage")

    @property
    def name(self) -> str:
        return f"dr-os(lambda={self.shrinkage:g})"

    def terms(self, data: BanditInputs) -> Terms:
        w = data.weights()
        lam = self.shrinkage
        if math.isinf(lam):
            applied = w
        elif lam == 0.0:
            applied = np.zeros_like(w)
        else:
            applied = lam * w / (w * w + lam)
        residual = data.reward - data.q_logged(self.name)
        return Terms(
            direct=data.q_expected(self.name) + applied * residual,
            numerator=None,
            denominator=None,
            weights=applied,
            clipped_mass=removed_mass(w, applied),
        )
