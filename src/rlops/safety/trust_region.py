"""The KL trust region: serve a new policy only as far from the baseline as the bound allows.

Per context, the served distribution is ``m_w = (1 - w) p + w b`` with the smallest
baseline weight ``w`` in ``[0, 1]`` such that ``KL(m_w || b) <= bound``.

``g(w) = KL(m_w || b)`` is convex in ``w`` (KL is jointly convex and ``m_w`` is affine in
``w``) with ``g(1) = 0``, so it is non-increasing on ``[0, 1]``: the feasible set is an
interval ``[w*, 1]`` and bisection finds ``w*``. If ``p`` puts mass where ``b`` has none,
``g(w) = inf`` for every ``w < 1`` and the baseline is served (``w = 1``): a deterministic
baseline must be smoothed (its exploration floor) before a trust region can move at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rlops.core.errors import ValidationError
from rlops.policies.contract import Probs, kl_divergence

F64 = npt.NDArray[np.float64]
BISECTION_STEPS = 48  # 2**-48 of the unit interval: far below any bound's meaning


@dataclass(frozen=True, eq=False)
class TrustRegionMix:
    """``probs (n, k)`` served; ``baseline_weight (n,)`` the ``w`` per row; ``kl (n,)`` its KL."""

    probs: Probs
    baseline_weight: F64
    kl: F64


def _check(p: Probs, b: Probs, bound: float) -> None:
    if p.shape != b.shape or p.ndim != 2:
        raise ValidationError(
            f"policy {p.shape} and baseline {b.shape} must match (n, k)", field="baseline"
        )
    if not (np.isfinite(bound) and bound >= 0.0):
        raise ValidationError("the KL bound must be a finite number >= 0", field="bound")
    for name, x in (("probabilities", p), ("baseline", b)):
        if np.any(x < 0) or not np.allclose(x.sum(axis=1), 1.0, atol=1e-6):
            raise ValidationError(f"{name} rows must be distributions", field=name)


def trust_region_mix(p: Probs, b: Probs, bound: float) -> TrustRegionMix:
    """The smallest-baseline-weight mix of ``p`` and ``b`` within ``KL(. || b) <= bound``."""
    _check(p, b, bound)
    w = np.zeros(len(p))
    kl0 = kl_divergence(p, b)
    over = np.flatnonzero(kl0 > bound)
    if len(over):
        po, bo = p[over], b[over]
        lo, hi = np.zeros(len(over)), np.ones(len(over))
        for _ in range(BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            feasible = kl_divergence((1.0 - mid)[:, None] * po + mid[:, None] * bo, bo) <= bound
            hi = np.where(feasible, mid, hi)
            lo = np.where(feasible, lo, mid)
        w[over] = hi
    mixed = (1.0 - w)[:, None] * p + w[:, None] * b
    return TrustRegionMix(probs=mixed, baseline_weight=w, kl=kl_divergence(mixed, b))
