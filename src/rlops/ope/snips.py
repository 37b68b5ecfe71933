"""Self-normalised inverse propensity scoring (Swaminathan & Joachims 2015).

    V_SNIPS = sum_i(w_i r_i) / sum_i(w_i)

Biased but consistent; bounded by the reward range, so far less variable than IPS when
the weights are large. Matches obp's ``SelfNormalizedInverseProbabilityWeighting``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlops.core.errors import ValidationError
from rlops.ope.estimate import BanditInputs, Terms


@dataclass(frozen=True, slots=True, kw_only=True)
class SNIPS:
    """Self-normalised IPS."""

    @property
    def name(self) -> str:
        return "snips"

    def terms(self, data: BanditInputs) -> Terms:
        w = data.weights()
        if float(w.sum()) == 0.0:
            raise ValidationError(
                "every importance weight is 0: the target policy never takes a logged action",
                field="action_dist",
            )
        return Terms(direct=None, numerator=w * data.reward, denominator=w, weights=w)
