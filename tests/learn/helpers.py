"""Small logged data sets for the learner tests."""

from __future__ import annotations

import numpy as np

from rlops.core.actions import Action, ActionCatalog
from rlops.core.features import Feature, FeatureSchema
from rlops.learn.data import LoggedData

SCHEMA = FeatureSchema.of([Feature("x0"), Feature("x1"), Feature("x2")])
CATALOG = ActionCatalog.of([Action("a0"), Action("a1"), Action("a2")])


def bandit_data(n: int = 600, seed: int = 0, *, masked: bool = True) -> LoggedData:
    """One-step data: reward 1 when the action is the row's largest feature.

    With ``masked``, each row forbids one random action other than the one taken.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    actions = rng.integers(0, 3, size=n)
    allowed = np.ones((n, 3), dtype=bool)
    if masked:
        banned = (actions + rng.integers(1, 3, size=n)) % 3
        allowed[np.arange(n), banned] = False
    return LoggedData(
        features=x,
        actions=actions.astype(np.int64),
        propensities=1.0 / allowed.sum(axis=1),
        rewards=(actions == x.argmax(axis=1)).astype(np.float64),
        allowed=allowed,
        unit_ids=np.array([f"u{i % 10}" for i in range(n)]),
        ts=np.arange(n, dtype=np.float64),
        schema=SCHEMA,
        catalog=CATALOG,
    )
