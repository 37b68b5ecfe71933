"""The serving path of one policy: policy -> masks -> exploration -> trust region -> sample.

``PolicyStack.decide`` turns contexts into actions with the propensity each was chosen
with, in the order DESIGN.md fixes:

1. masks: the actions each context may receive (a masked action gets probability 0);
2. the policy's distribution over the allowed actions (masked scores for scoring
   policies, so a greedy policy picks its best *allowed* action);
3. exploration at the schedule's current rate, and the propensity floor;
4. the trust region: the smallest baseline weight that keeps ``KL(served || baseline)``
   within the bound, against the baseline masked and floored the same way (a rule
   engine is deterministic, and a trust region around a one-hot is empty);
5. one uniform per row, from the caller's generator (or given), picks the action.

``explored`` marks a decision whose action differs from the policy's own best allowed
action. The stack is numpy only; the server builds one per loaded version.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.core.errors import ValidationError
from rlops.core.features import FeatureSchema
from rlops.exploration.explorer import Explorer, with_floor
from rlops.policies.contract import Features, Policy, Probs, greedy, softmax
from rlops.safety.masks import ActionMask, ChangeLedger, FlickerLimit, mask_from_json
from rlops.safety.trust_region import trust_region_mix

Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class SafetyConfig:
    """Masks and the KL bound (nats per context; ``None`` disables the trust region).

    ``baseline_floor`` smooths the baseline before the KL is measured when no explorer
    floor is set, so a deterministic baseline still leaves room to move.
    """

    masks: tuple[ActionMask, ...] = ()
    kl_bound: float | None = None
    baseline_floor: float = 0.0

    def __post_init__(self) -> None:
        if self.kl_bound is not None and not (math.isfinite(self.kl_bound) and self.kl_bound >= 0):
            raise ValidationError("kl_bound must be a finite number >= 0", field="safety.kl_bound")
        if not 0.0 <= self.baseline_floor <= 1.0:
            raise ValidationError(
                "baseline_floor must lie in [0, 1]", field="safety.baseline_floor"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "masks": [m.to_json() for m in self.masks],
            "kl_bound": self.kl_bound,
            "baseline_floor": self.baseline_floor,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SafetyConfig:
        return cls(
            masks=tuple(mask_from_json(m) for m in data.get("masks", ())),
            kl_bound=data.get("kl_bound"),
            baseline_floor=float(data.get("baseline_floor", 0.0)),
        )


@dataclass(frozen=True, eq=False)
class Decisions:
    """``index (n,)`` chosen catalog indices; ``propensity (n,)``; ``explored (n,)``;
    ``probs (n, k)`` the served distributions; ``baseline_weight (n,)`` the trust
    region's ``w`` (0 without one)."""

    index: npt.NDArray[np.int64]
    propensity: npt.NDArray[np.float64]
    explored: npt.NDArray[np.bool_]
    probs: Probs
    baseline_weight: npt.NDArray[np.float64]


def renormalised(probs: Probs, allowed: Mask) -> Probs:
    """``probs`` restricted to allowed actions; a row with no allowed mass becomes uniform."""
    kept = np.where(allowed, probs, 0.0)
    mass = kept.sum(axis=1, keepdims=True)
    uniform = allowed / allowed.sum(axis=1, keepdims=True)
    out: Probs = np.where(mass > 0, kept / np.where(mass > 0, mass, 1.0), uniform)
    return out


def sample(probs: Probs, uniforms: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Inverse-CDF sampling, one uniform per row; never an action at probability 0."""
    cumulative = np.cumsum(probs, axis=1)
    index = (uniforms[:, None] * cumulative[:, -1:] >= cumulative).sum(axis=1)
    index = np.minimum(index, probs.shape[1] - 1)
    # Float round-off could land on a zero-probability action at the end; step back.
    bad = probs[np.arange(len(probs)), index] <= 0.0
    if np.any(bad):
        index[bad] = np.argmax(probs[bad], axis=1)
    out: npt.NDArray[np.int64] = index.astype(np.int64)
    return out


@dataclass
class PolicyStack:
    policy: Policy
    schema: FeatureSchema
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    explorer: Explorer | None = None
    baseline: Policy | None = None
    ledger: ChangeLedger | None = None

    def __post_init__(self) -> None:
        if self.safety.kl_bound is not None and self.baseline is None:
            raise ValidationError("a trust region needs a baseline policy", field="baseline")
        flicker = [m for m in self.safety.masks if isinstance(m, FlickerLimit)]
        if flicker and self.ledger is None:
            self.ledger = ChangeLedger()
        self._flicker = flicker[0] if flicker else None

    def allowed(
        self,
        features: Features,
        actions: ActionCatalog,
        unit_ids: Sequence[str] | None = None,
        ts: Sequence[float] | None = None,
    ) -> Mask:
        allowed = np.ones((len(features), len(actions)), dtype=bool)
        counts = None
        if self.ledger is not None and unit_ids is not None and ts is not None:
            counts = self.ledger.counts(unit_ids, ts)
        for mask in self.safety.masks:
            allowed &= mask.allowed(features, actions, self.schema, counts)
        if not np.all(allowed.any(axis=1)):
            row = int(np.flatnonzero(~allowed.any(axis=1))[0])
            raise ValidationError(f"the masks leave no action for context {row}", field="masks")
        return allowed

    def _policy_probs(
        self, features: Features, actions: ActionCatalog, allowed: Mask
    ) -> tuple[Probs, Any]:
        scorer = getattr(self.policy, "scores", None)
        head = getattr(self.policy, "head", None)
        if scorer is not None and head is not None:
            raw = scorer(features, actions)
            if not np.all(np.isfinite(raw)):  # argmax of a NaN is action 0: refuse instead
                raise FloatingPointError("the policy's scores are not all finite")
            scores = np.where(allowed, raw, -np.inf)
            probs = greedy(scores) if head.kind == "greedy" else softmax(scores, head.temperature)
            return probs, scores
        given = self.policy.probabilities(features, actions)
        if not np.all(np.isfinite(given)):
            raise FloatingPointError("the policy's probabilities are not all finite")
        return renormalised(given, allowed), None

    def distribution(
        self,
        features: Features,
        actions: ActionCatalog,
        unit_ids: Sequence[str] | None = None,
        ts: Sequence[float] | None = None,
    ) -> tuple[Probs, Probs, npt.NDArray[np.float64]]:
        """``(served (n, k), policy's own masked (n, k), baseline weight (n,))``."""
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.schema.dim:
            raise ValidationError(f"features must be (n, {self.schema.dim})", field="features")
        allowed = self.allowed(x, actions, unit_ids, ts)
        own, scores = self._policy_probs(x, actions, allowed)
        served = own if self.explorer is None else self.explorer.apply(own, allowed, scores)
        weight = np.zeros(len(x))
        if self.safety.kl_bound is not None and self.baseline is not None:
            floor = self.explorer.config.floor if self.explorer is not None else 0.0
            floor = max(floor, self.safety.baseline_floor)
            base = with_floor(
                renormalised(self.baseline.probabilities(x, actions), allowed), allowed, floor
            )
            mix = trust_region_mix(served, base, self.safety.kl_bound)
            served, weight = mix.probs, mix.baseline_weight
        return served, own, weight

    def decide(
        self,
        features: Features,
        actions: ActionCatalog,
        rng: np.random.Generator | None,
        unit_ids: Sequence[str] | None = None,
        ts: Sequence[float] | None = None,
        *,
        uniforms: npt.NDArray[np.float64] | None = None,
    ) -> Decisions:
        """``uniforms`` (one per row) replace ``rng``: the server derives each from its
        request id, so a replayed request draws the same action."""
        served, own, weight = self.distribution(features, actions, unit_ids, ts)
        if uniforms is None:
            if rng is None:
                raise ValidationError("decide needs an rng or uniforms", field="rng")
            uniforms = rng.random(len(served))
        index = sample(served, uniforms)
        rows = np.arange(len(served))
        if self.explorer is not None:
            self.explorer.advance(len(served))
        if (
            self._flicker is not None
            and self.ledger is not None
            and unit_ids is not None
            and ts is not None
        ):
            change = actions.feature_matrix()[
                :, actions.feature_names.index(self._flicker.change_feature)
            ]
            self.ledger.record(unit_ids, ts, list(change[index] != 0.0))
        return Decisions(
            index=index,
            propensity=served[rows, index],
            explored=index != np.argmax(own, axis=1),
            probs=served,
            baseline_weight=weight,
        )
