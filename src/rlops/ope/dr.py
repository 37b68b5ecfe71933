"""Doubly robust estimation (Dudík, Langford & Li 2011, eq. 2).

    V_DR = mean_i( sum_a pi_e(a|x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)) )

Unbiased when either the propensities or the reward model are right; the reward model
only has to absorb variance, so a misspecified one costs little.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlops.ope.estimate import BanditInputs, Terms


@dataclass(frozen=True, slots=True, kw_only=True)
class DoublyRobust:
    """Doubly robust: the direct method plus an importance-weighted residual."""

    @property
    def name(self) -> str:
        return "dr"

    def terms(self, data: BanditInputs) -> Terms:
        w = data.weights()
        residual = data.reward - data.q_logged(self.name)
        return Terms(
            direct=data.q_expected(self.name) + w * residual,
            numerator=None,
            denominator=None,
            weights=w,
        )
