"""Shared pieces of the loop tests: a hand-written bad policy and the small loop settings."""

from __future__ import annotations

import numpy as np

from rlops.apps.spaces import app_rules, app_spaces
from rlops.pipeline.loop_config import CanaryConfig, LoopConfig
from rlops.policies.linear import LinearPolicy
from rlops.registry.gates import GateConfig
from rlops.registry.registry import Registry
from rlops.serving.bootstrap import baseline_policy, ensure_production
from rlops.sim.battery import BatteryConfig

# Tiny gate and battery: one seed, 20 products (the gate's figures are not under test here).
SMALL_BATTERY = BatteryConfig(seeds=(100,), pricing_products=20)


def small_loop(**changes: object) -> LoopConfig:
    settings: dict[str, object] = {
        "app": "pricing",
        "learner": "bandit",
        "learner_config": {"rule": "greedy"},
        "min_new_examples": 400,
        "gate": GateConfig(kl_bound=3.0, n_resamples=50),
        "battery": SMALL_BATTERY,
        "canary": CanaryConfig(share=0.3, min_decisions=200, min_examples=100),
        **changes,
    }
    return LoopConfig(**settings)  # type: ignore[arg-type]  # a test's settings table


def highest_price_policy() -> LinearPolicy:
    """Raise the price on every visit, whatever the product: a clearly bad pricer."""
    schema, catalog = app_spaces("pricing")
    top = int(np.argmax([a.features[0] for a in catalog.actions]))
    bias = np.zeros(len(catalog))
    bias[top] = 10.0
    return LinearPolicy(catalog.ids, np.zeros((len(catalog), schema.dim)), bias)


def register_highest_price(registry: Registry, name: str = "pricing") -> str:
    schema, catalog = app_spaces("pricing")
    record = registry.register_policy(
        highest_price_policy(), name=name, schema=schema, catalog=catalog, actor="test"
    )
    return record.version


def bootstrap_rules(registry: Registry, name: str = "pricing") -> str:
    """The rules in production, as a fresh installation serves them."""
    schema, catalog = app_spaces("pricing")
    ensure_production(registry, baseline_policy(name, schema, catalog, app_rules("pricing")), name)
    return registry.require_alias(name, "production").version
