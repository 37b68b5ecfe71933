"""Every numpy policy family, built small and seeded, for the contract suite."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest

from rlops.core.actions import ActionCatalog
from rlops.core.features import FeatureSchema
from rlops.policies import BilinearPolicy, Head, LinearPolicy, MLPPolicy, RulesPolicy
from rlops.policies.artifact import SaveablePolicy
from rlops.sim.advisor_core import ADVISOR_ACTIONS, ADVISOR_SCHEMA
from rlops.sim.baselines import AdvisorRules, PricingRules, UniformRandom
from rlops.sim.pricing_core import PRICING_ACTIONS, PRICING_SCHEMA

Case = tuple[SaveablePolicy, FeatureSchema, ActionCatalog]


def _linear(rng: np.random.Generator) -> Case:
    k, d = len(PRICING_ACTIONS), PRICING_SCHEMA.dim
    policy = LinearPolicy(
        PRICING_ACTIONS.ids,
        rng.normal(size=(k, d)),
        rng.normal(size=k),
        head=Head("softmax", 0.5),
        shift=rng.normal(size=d),
        scale=rng.uniform(0.5, 2.0, size=d),
    )
    return policy, PRICING_SCHEMA, PRICING_ACTIONS


def _bilinear(rng: np.random.Generator) -> Case:
    d, m = ADVISOR_SCHEMA.dim, len(ADVISOR_ACTIONS.feature_names)
    policy = BilinearPolicy(
        rng.normal(size=(d + 1, 2 * m + 1)),
        ADVISOR_ACTIONS.feature_names,
        action_map="quadratic",
    )
    return policy, ADVISOR_SCHEMA, ADVISOR_ACTIONS


def _mlp(rng: np.random.Generator) -> Case:
    d, k = PRICING_SCHEMA.dim, len(PRICING_ACTIONS)
    sizes = [d, 64, 64, k]
    layers = tuple(
        (rng.normal(size=(a, b)) / np.sqrt(a), rng.normal(size=b) * 0.1)
        for a, b in itertools.pairwise(sizes)
    )
    policy = MLPPolicy(PRICING_ACTIONS.ids, layers, activation="tanh", output="logits")
    return (
        MLPPolicy(
            policy.action_ids, layers, activation="tanh", output="logits", head=Head("softmax")
        ),
        PRICING_SCHEMA,
        PRICING_ACTIONS,
    )


def _mlp_q(rng: np.random.Generator) -> Case:
    d, k = ADVISOR_SCHEMA.dim, len(ADVISOR_ACTIONS)
    layers = (
        (rng.normal(size=(d, 32)), rng.normal(size=32)),
        (rng.normal(size=(32, k)), rng.normal(size=k)),
    )
    return MLPPolicy(ADVISOR_ACTIONS.ids, layers), ADVISOR_SCHEMA, ADVISOR_ACTIONS


def _pricing_rules(rng: np.random.Generator) -> Case:
    return RulesPolicy.of(PricingRules(PRICING_SCHEMA)), PRICING_SCHEMA, PRICING_ACTIONS


def _advisor_rules(rng: np.random.Generator) -> Case:
    return RulesPolicy.of(AdvisorRules(ADVISOR_SCHEMA)), ADVISOR_SCHEMA, ADVISOR_ACTIONS


def _uniform(rng: np.random.Generator) -> Case:
    return RulesPolicy.of(UniformRandom()), ADVISOR_SCHEMA, ADVISOR_ACTIONS


FAMILIES: dict[str, Callable[[np.random.Generator], Case]] = {
    "linear": _linear,
    "bilinear": _bilinear,
    "mlp_logits": _mlp,
    "mlp_q": _mlp_q,
    "pricing_rules": _pricing_rules,
    "advisor_rules": _advisor_rules,
    "uniform": _uniform,
}


def contexts(schema: FeatureSchema, n: int, seed: int = 0) -> np.ndarray:
    """Valid random contexts: every feature drawn within its bounds, categories one-hot."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        row: dict[str, object] = {}
        for f in schema.features:
            if f.kind == "category":
                row[f.name] = f.categories[int(rng.integers(len(f.categories)))]
            elif f.kind == "bool":
                row[f.name] = bool(rng.integers(2))
            else:
                low = 0.0 if f.low is None else f.low
                high = low + 2.0 if f.high is None else min(f.high, low + 2.0)
                value = rng.uniform(low, high)
                row[f.name] = int(value) if f.kind == "int" else float(value)
        rows.append(row)
    return schema.matrix(rows)


@pytest.fixture(params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> tuple[str, Case]:
    name = str(request.param)
    return name, FAMILIES[name](np.random.default_rng(7))
