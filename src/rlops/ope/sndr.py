"""Self-normalised doubly robust estimation, as obp defines it.

    V_SNDR = mean_i( sum_a pi_e(a|x_i) q(x_i, a) ) + sum_i w_i (r_i - q(x_i, a_i)) / sum_i w_i

Only the importance-weighted correction is normalised (obp 0.5.7's
``SelfNormalizedDoublyRobust``), so the direct-method part stays a plain mean.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlops.core.errors import ValidationError
from rlops.ope.estimate import BanditInputs, Terms


@dataclass(frozen=True, slots=True, kw_only=True)
class SNDR:
    """Self-normalised doubly robust."""

    @property
    def name(self) -> str:
        return "sndr"

    def terms(self, data: BanditInputs) -> Terms:
        w = data.weights()
        if float(w.sum()) == 0.0:
            raise ValidationError(
                "every importance weight is 0: the target policy never takes a logged action",
                field="action_dist",
            )
        residual = data.reward - data.q_logged(self.name)
        return Terms(
            direct=data.q_expected(self.name), numerator=w * residual, denominator=w, weights=w
        )
