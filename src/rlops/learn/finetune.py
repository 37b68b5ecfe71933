"""Fine-tuning a deployed policy: new data mixed with old, served inside the trust region.

Training only on the newest rewards forgets what the policy knew and chases noise; so a
fine-tuning set is the new data plus a sample of the data the deployed policy was trained
on (``old_fraction`` of the mix). The candidate starts from the deployed weights and, once
trained, is served through the KL trust region to its baseline: whatever the optimiser
did, ``KL(served || baseline) <= bound`` holds per context. :func:`trust_region_report`
measures it on real contexts so the gate and the registry can record it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlops.core.errors import ValidationError
from rlops.exploration.explorer import with_floor
from rlops.learn.data import F32, LoggedData, concat
from rlops.policies.contract import Policy, kl_divergence
from rlops.safety.trust_region import trust_region_mix


def mix(old: LoggedData, new: LoggedData, *, old_fraction: float, seed: int) -> LoggedData:
    """All of ``new`` plus old rows drawn so that they make ``old_fraction`` of the result.

    Old rows are drawn without replacement (with replacement only if ``old`` is too small),
    by a seeded generator: the same inputs give the same mix.
    """
    if not 0.0 <= old_fraction < 1.0:
        raise ValidationError("old_fraction must lie in [0, 1)", field="old_fraction")
    if len(new) == 0:
        raise ValidationError("fine-tuning needs new data", field="new")
    wanted = round(len(new) * old_fraction / (1.0 - old_fraction))
    if wanted == 0 or len(old) == 0:
        return new
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(old), size=wanted, replace=wanted > len(old))
    return concat([old.subset(np.sort(rows)), new])


@dataclass(frozen=True, slots=True)
class TrustRegionReport:
    """KL of the served distribution from the baseline over real contexts (nats)."""

    bound: float
    mean_kl: float
    max_kl: float
    mean_baseline_weight: float
    unconstrained_mean_kl: float  # what the candidate alone would have been
    contexts: int

    @property
    def within(self) -> bool:
        return self.max_kl <= self.bound + 1e-12

    def to_json(self) -> dict[str, Any]:
        return {
            "bound": self.bound,
            "mean_kl": self.mean_kl,
            "max_kl": self.max_kl,
            "mean_baseline_weight": self.mean_baseline_weight,
            "unconstrained_mean_kl": self.unconstrained_mean_kl,
            "contexts": self.contexts,
            "within": self.within,
        }


def trust_region_report(
    candidate: Policy,
    baseline: Policy,
    features: F32,
    data: LoggedData,
    *,
    bound: float,
    floor: float = 0.0,
) -> TrustRegionReport:
    """Serve ``candidate`` within ``bound`` of ``baseline`` (floored) on ``features``."""
    if len(features) == 0:
        raise ValidationError("no contexts to measure the trust region on", field="features")
    allowed = np.ones((len(features), len(data.catalog)), dtype=bool)
    p = candidate.probabilities(features, data.catalog)
    b = with_floor(baseline.probabilities(features, data.catalog), allowed, floor)
    result = trust_region_mix(p, b, bound)
    unconstrained = kl_divergence(p, b)
    return TrustRegionReport(
        bound=bound,
        mean_kl=float(result.kl.mean()),
        max_kl=float(result.kl.max()),
        mean_baseline_weight=float(result.baseline_weight.mean()),
        unconstrained_mean_kl=float(np.mean(np.minimum(unconstrained, 1e6))),
        contexts=len(features),
    )
