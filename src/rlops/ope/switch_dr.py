"""Switch doubly robust estimation (Wang, Agarwal & Dudík 2017, eq. 5).

    V_SwitchDR = mean_i( sum_a pi_e(a|x_i) q(x_i, a) + 1[w_i <= lambda] w_i (r_i - q(x_i, a_i)) )

Rows whose weight exceeds ``lambda`` fall back to the direct method. ``lambda = inf`` is
DR; ``lambda = 0`` is DM. Matches obp's ``SwitchDoublyRobust``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlops.ope.estimate import BanditInputs, Terms
from rlops.ope.ips import check_lambda, removed_mass


@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchDR:
    """Switch-DR with threshold ``switch`` (the paper's lambda / tau)."""

    switch: float

    def __post_init__(self) -> None:
        check_lambda(self.switch, "switch")

    @property
    def name(self) -> str:
        return f"switch-dr(lambda={self.switch:g})"

    def terms(self, data: BanditInputs) -> Terms:
        w = data.weights()
        applied = np.where(w <= self.switch, w, 0.0)
        residual = data.reward - data.q_logged(self.name)
        return Terms(
            direct=data.q_expected(self.name) + applied * residual,
            numerator=None,
            denominator=None,
            weights=applied,
            clipped_mass=removed_mass(w, applied),
        )
