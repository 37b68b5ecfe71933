"""Apprentice mode: clone the incumbent from its logs, measure, and only then let it act.

1. Split the incumbent's logged decisions by unit (a product, a user) into a training
   set and a held-out set, so no unit's trajectory is on both sides.
2. Fit behaviour cloning (:mod:`rlops.learn.bc`) on the training set.
3. The match rate is the share of held-out decisions where the clone's top allowed
   action is the logged one. The apprentice may act on its own only strictly above the
   configured threshold (:func:`rlops.policies.apprentice.may_act`); until then
   :class:`~rlops.policies.apprentice.ApprenticePolicy` serves the incumbent.

A clone that reproduces the incumbent is the safe starting point for anything that
learns from there (CQL, fine-tuning): it begins from known behaviour, not from noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from rlops.core.errors import ValidationError
from rlops.learn.bc import BCConfig, BCResult, train_bc
from rlops.learn.data import LoggedData
from rlops.learn.nets import Progress, check, config_from_json, config_to_json
from rlops.policies.apprentice import ApprenticePolicy, may_act
from rlops.policies.contract import Policy
from rlops.policies.mlp import MLPPolicy


@dataclass(frozen=True)
class ApprenticeConfig:
    """The clone's training config, the match rate to beat, and the held-out share."""

    type: ClassVar[str] = "apprentice"
    bc: BCConfig = field(default_factory=BCConfig)
    threshold: float = 0.9
    holdout_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        check(
            {
                "threshold": 0.0 <= self.threshold <= 1.0,
                "holdout_fraction": 0.0 < self.holdout_fraction < 1.0,
            },
            "apprentice config",
        )

    def to_json(self) -> dict[str, Any]:
        return config_to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApprenticeConfig:
        fields = dict(data)
        if isinstance(fields.get("bc"), dict):
            fields["bc"] = BCConfig.from_json(fields["bc"])
        return config_from_json(cls, fields)


@dataclass(frozen=True)
class ApprenticeReport:
    """What the apprentice showed on held-out decisions, and the verdict."""

    match_rate: float
    threshold: float
    may_act: bool
    n_train: int
    n_holdout: int

    def to_json(self) -> dict[str, Any]:
        return {
            "match_rate": self.match_rate,
            "threshold": self.threshold,
            "may_act": self.may_act,
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
        }


@dataclass(frozen=True, eq=False)
class Apprentice:
    policy: MLPPolicy
    report: ApprenticeReport
    bc: BCResult

    def serving(self, incumbent: Policy) -> ApprenticePolicy:
        """The policy to serve: the clone if it may act, else the incumbent."""
        return ApprenticePolicy(incumbent, self.policy, acting=self.report.may_act)


def match_rate(policy: Policy, data: LoggedData) -> float:
    """Share of rows whose top allowed action under ``policy`` is the logged action."""
    if len(data) == 0:
        raise ValidationError("no rows to measure a match rate on", field="data")
    probs = policy.probabilities(data.features, data.catalog)
    top = np.where(data.allowed, probs, -1.0).argmax(axis=1)
    return float(np.mean(top == data.actions))


def holdout_split(data: LoggedData, fraction: float, seed: int) -> tuple[LoggedData, LoggedData]:
    """``(train, holdout)``: whole units held out where there are several, else rows."""
    rng = np.random.default_rng(seed)
    units = np.unique(data.unit_ids)
    if len(units) >= 2:
        n_held = min(len(units) - 1, max(1, round(fraction * len(units))))
        held = np.isin(data.unit_ids, rng.choice(units, n_held, replace=False))
    else:
        if len(data) < 2:
            raise ValidationError("a held-out split needs at least two rows", field="data")
        n_held = min(len(data) - 1, max(1, round(fraction * len(data))))
        held = np.zeros(len(data), dtype=bool)
        held[rng.choice(len(data), n_held, replace=False)] = True
    return data.subset(~held), data.subset(held)


def train_apprentice(
    data: LoggedData,
    config: ApprenticeConfig | None = None,
    *,
    progress: Progress | None = None,
) -> Apprentice:
    """Clone the incumbent that logged ``data`` and report whether the clone may act."""
    config = config or ApprenticeConfig()
    train, holdout = holdout_split(data, config.holdout_fraction, config.seed)
    result = train_bc(train, config.bc, progress=progress)
    rate = match_rate(result.policy, holdout)
    report = ApprenticeReport(
        match_rate=rate,
        threshold=config.threshold,
        may_act=may_act(rate, config.threshold),
        n_train=len(train),
        n_holdout=len(holdout),
    )
    return Apprentice(result.policy, report, result)
