"""Apprentice mode at serving time: the incumbent answers until the apprentice has earned it.

A new policy first learns to imitate the incumbent (a rule engine, say) from its logs
and is measured on held-out decisions by its match rate: how often its top action is
the one the incumbent logged. Only above a configured match rate may it act on its own;
until then the incumbent's probabilities are served, so the switch cannot change what
customers see before the apprentice is shown to reproduce it. Numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlops.core.actions import ActionCatalog
from rlops.core.errors import ValidationError
from rlops.policies.contract import Features, Policy, Probs


def may_act(match_rate: float, threshold: float) -> bool:
    """Whether an apprentice with ``match_rate`` may act: strictly above ``threshold``."""
    for name, value in (("match_rate", match_rate), ("threshold", threshold)):
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValidationError(f"{name} must lie in [0, 1], got {value!r}", field=name)
    return match_rate > threshold


@dataclass(frozen=True)
class ApprenticePolicy:
    """Serves ``apprentice`` when ``acting`` is true, else ``incumbent``."""

    incumbent: Policy
    apprentice: Policy
    acting: bool = False

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs:
        chosen = self.apprentice if self.acting else self.incumbent
        return chosen.probabilities(features, actions)

    def agreement(self, features: Features, actions: ActionCatalog) -> float:
        """Share of rows on which both policies' top actions agree (a shadow-mode check)."""
        a = self.apprentice.probabilities(features, actions).argmax(axis=1)
        b = self.incumbent.probabilities(features, actions).argmax(axis=1)
        return float(np.mean(a == b)) if len(a) else 0.0
