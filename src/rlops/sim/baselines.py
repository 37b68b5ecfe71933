"""Rule engines, written the way teams write them before RL: the control group.

Every policy here answers ``probabilities(features, actions) -> (n, k)``: rows over the
catalog's actions that sum to 1, read from feature columns by name. Rules are
deterministic (one-hot rows); ``act`` picks each row's action, sampling where a row is
not one-hot, with the caller's generator. The ``bad`` policies exist to prove the gate
fails what it should.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.core.errors import ValidationError
from rlops.core.features import FeatureSchema

Features = npt.NDArray[np.float32]
Probs = npt.NDArray[np.float64]


@runtime_checkable
class Policy(Protocol):
    """What the simulators, the battery and the gate need from any policy."""

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs: ...


def act(
    policy: Policy, features: Features, actions: ActionCatalog, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], Probs]:
    """Sample one action index per row; returns ``(indices (n,), propensities (n,))``.

    Draws one uniform per row whatever the policy, so two policies on the same generator
    consume it identically.
    """
    probs = policy.probabilities(features, actions)
    cumulative = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cumulative[:, -1]
    index = (u[:, None] >= cumulative).sum(axis=1)
    index = np.minimum(index, probs.shape[1] - 1).astype(np.int64)
    return index, probs[np.arange(len(probs)), index]


def one_hot(index: npt.NDArray[np.int64], k: int) -> Probs:
    out = np.zeros((len(index), k))
    out[np.arange(len(index)), index] = 1.0
    return out


def _column(schema: FeatureSchema, features: Features, name: str) -> npt.NDArray[np.float32]:
    return features[:, schema.columns.index(name)]


def _action(actions: ActionCatalog, feature: str, value: float) -> int:
    """The index of the action whose ``feature`` is closest to ``value``."""
    column = actions.feature_matrix()[:, actions.feature_names.index(feature)]
    return int(np.argmin(np.abs(column - value)))


@dataclass(frozen=True, slots=True)
class PricingRules:
    """If-else pricing on inventory, competitor price and time, in priority order.

    1. Behind the clearance schedule late in the window: cut 10%.
    2. Nearly sold out and at most 1.1x base: raise 5%.
    3. Competitor more than 5% cheaper (and we are above the floor ratio): cut 5%.
    4. Selling ahead of schedule, competitor more than 5% dearer, price at most 1.2x base:
       raise 5%.
    5. Above base price with healthy stock: cut 5% back towards base.
    6. Otherwise hold.
    """

    schema: FeatureSchema
    behind_margin: float = 1.15
    late_fraction: float = 0.5
    ahead_margin: float = 0.8
    low_stock_ratio: float = 0.15
    gap: float = 0.05

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs:
        def col(name: str) -> npt.NDArray[np.float32]:
            return _column(self.schema, features, name)

        price, competitor = col("price_ratio"), col("competitor_ratio")
        left, unsold = col("window_left"), col("clearance_gap")
        behind = (left < self.late_fraction) & (unsold > self.behind_margin * left)
        choice = np.full(len(features), _action(actions, "price_change", 0.0))
        rules = [
            (behind, -0.10),
            ((col("inventory_ratio") < self.low_stock_ratio) & (price <= 1.1), 0.05),
            ((competitor < price * (1.0 - self.gap)) & (price > 0.85), -0.05),
            (
                (unsold < self.ahead_margin * left)
                & (competitor > price * (1.0 + self.gap))
                & (price <= 1.2),
                0.05,
            ),
            ((price > 1.0 + self.gap) & (col("inventory_ratio") > 2 * self.low_stock_ratio), -0.05),
        ]
        decided = np.zeros(len(features), dtype=bool)
        for mask, change in rules:
            take = mask & ~decided
            choice[take] = _action(actions, "price_change", change)
            decided |= mask
        return one_hot(choice.astype(np.int64), len(actions))


@dataclass(frozen=True, slots=True)
class AdvisorRules:
    """A risk-tolerance lookup table: each band maps to a target volatility, and the user
    gets the strategy whose declared target volatility is closest (so new strategies in
    the catalog are used without changing the table)."""

    schema: FeatureSchema
    bands: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    target_vols: tuple[float, ...] = (0.04, 0.07, 0.10, 0.14, 0.20)

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs:
        tolerance = _column(self.schema, features, "risk_tolerance")
        band = np.searchsorted(np.asarray(self.bands), tolerance, side="right")
        wanted = np.asarray(self.target_vols)[band]
        vols = actions.feature_matrix()[:, actions.feature_names.index("target_vol")]
        choice = np.argmin(np.abs(wanted[:, None] - vols[None, :]), axis=1)
        return one_hot(choice.astype(np.int64), len(actions))


@dataclass(frozen=True, slots=True)
class FixedAction:
    """Always the action whose ``feature`` is largest (``largest=True``) or smallest.

    ``FixedAction("price_change")`` is the "always +10%" pricing policy and
    ``FixedAction("target_vol")`` the "always the most aggressive strategy" advisor.
    """

    feature: str
    largest: bool = True

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs:
        column = actions.feature_matrix()[:, actions.feature_names.index(self.feature)]
        index = int(np.argmax(column) if self.largest else np.argmin(column))
        return one_hot(np.full(len(features), index, dtype=np.int64), len(actions))


@dataclass(frozen=True, slots=True)
class UniformRandom:
    """Every allowed action equally likely: the logging policy of a pure exploration run."""

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs:
        return np.full((len(features), len(actions)), 1.0 / len(actions))


POLICY_NAMES: tuple[str, ...] = ("baseline", "bad", "random")


def named_policy(app: str, name: str) -> Policy:
    """The command line's policies: ``baseline`` rules, the ``bad`` policy, ``random``."""
    from rlops.sim.advisor_core import ADVISOR_SCHEMA
    from rlops.sim.pricing_core import PRICING_SCHEMA

    if app not in ("pricing", "advisor"):
        raise ValidationError(f"unknown app {app!r}; known: pricing, advisor", field="app")
    if name == "baseline":
        return PricingRules(PRICING_SCHEMA) if app == "pricing" else AdvisorRules(ADVISOR_SCHEMA)
    if name == "bad":
        return FixedAction("price_change" if app == "pricing" else "target_vol")
    if name == "random":
        return UniformRandom()
    raise ValidationError(f"unknown policy {name!r}; known: {POLICY_NAMES}", field="policy")
