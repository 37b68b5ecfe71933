"""What the server bench prepares before load: the seed's model, ours' registry and features.

Redis rows use the feature store's layout, ``rlops:features:{app}:{unit_id}`` holding one
JSON object of feature name to value, written directly (not through the store) so the
bench does not depend on the code it measures to set itself up.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import orjson

from benchmarks.loadgen import UNITS
from rlops.core.features import FeatureValue
from rlops.sim.pricing_core import PRICING_ACTIONS, PRICING_SCHEMA

FEATURE_KEY = "rlops:features:pricing:{unit}"
FEATURE_TTL_S = 3600


def seed_model(tmp: Path) -> Path:
    """An untrained SB3 PPO on the pricing env: serving cost does not depend on training."""
    import gymnasium
    from stable_baselines3 import PPO

    import rlops  # noqa: F401 (registers the Gymnasium environments)
    from rlops.sim import PRICING_ENV_ID

    model = PPO("MlpPolicy", gymnasium.make(PRICING_ENV_ID), device="cpu", seed=0)
    path = tmp / "seed_ppo.zip"
    model.save(path)
    return path


def promote_mlp(root: Path) -> None:
    """An MLP (64x64 hidden, Q outputs) promoted to ``pricing``'s production alias."""
    from rlops.policies.mlp import MLPPolicy
    from rlops.registry.registry import Registry

    rng = np.random.default_rng(0)
    sizes = [PRICING_SCHEMA.dim, 64, 64, len(PRICING_ACTIONS)]
    layers = tuple(
        (rng.normal(size=(a, b)) / np.sqrt(a), rng.normal(size=b) * 0.01)
        for a, b in itertools.pairwise(sizes)
    )
    policy = MLPPolicy(PRICING_ACTIONS.ids, layers, output="q")
    with Registry.open(root) as registry:
        record = registry.register_policy(
            policy, name="pricing", schema=PRICING_SCHEMA, catalog=PRICING_ACTIONS
        )
        registry.promote("pricing", record.version, force=True, reason="bench")


def unit_features(rng: np.random.Generator) -> dict[str, FeatureValue]:
    """Each schema feature near its default, kept inside its bounds."""
    values: dict[str, FeatureValue] = {}
    for feature in PRICING_SCHEMA.features:
        if feature.kind == "bool":
            values[feature.name] = bool(rng.random() < 0.3)
            continue
        if feature.kind == "category":
            values[feature.name] = str(rng.choice(list(feature.categories)))
            continue
        default = float(feature.default if isinstance(feature.default, int | float) else 0.0)
        if feature.kind == "int":
            value = default + float(rng.poisson(3.0))
        else:
            value = default + float(rng.normal(0.0, 0.2 * max(1.0, abs(default))))
        low = feature.low if feature.low is not None else value
        high = feature.high if feature.high is not None else value
        value = min(max(value, low), high)
        values[feature.name] = int(value) if feature.kind == "int" else value
    return values


def _unit_keys() -> list[str]:
    return [FEATURE_KEY.format(unit=f"u{u}") for u in range(UNITS)]


def write_features(url: str) -> None:
    """A row for every unit the load cycles through; the TTL bounds what a killed bench
    leaves behind in a shared Redis."""
    import redis

    rng = np.random.default_rng(0)
    client = redis.Redis.from_url(url)
    with client.pipeline(transaction=False) as pipe:
        for key in _unit_keys():
            pipe.set(key, orjson.dumps(unit_features(rng)), ex=FEATURE_TTL_S)
        pipe.execute()
    client.close()


def delete_features(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = _unit_keys()
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()
