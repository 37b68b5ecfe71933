"""The direct method (Beygelzimer & Langford 2009): average the reward model under pi_e.

    V_DM = mean_i( sum_a pi_e(a|x_i) q(x_i, a) )

No importance weights, so no variance from them; biased whenever the reward model is.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlops.ope.estimate import BanditInputs, Terms


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectMethod:
    """The direct method over the reward-model predictions ``q_hat`` (n, k)."""

    @property
    def name(self) -> str:
        return "dm"

    def terms(self, data: BanditInputs) -> Terms:
        return Terms(
            direct=data.q_expected(self.name), numerator=None, denominator=None, weights=None
        )
