"""Registry fixtures: both index backends, policies whose action proves their version.

``fixed_policy(i)`` always chooses action ``i`` (greedy over a bias), so a decision's
action alone tells which version made it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rlops.core.actions import ActionCatalog
from rlops.core.features import FeatureSchema
from rlops.core.records import Example
from rlops.policies import MLPPolicy, save_policy
from rlops.registry.registry import Registry
from rlops.sim.pricing_core import PRICING_ACTIONS, PRICING_SCHEMA
from tests.conftest import PG_DSN, drop_postgres_schema, require_postgres

SCHEMA: FeatureSchema = PRICING_SCHEMA
CATALOG: ActionCatalog = PRICING_ACTIONS
NAME = "pricing"
REDIS_URL = os.environ.get("RLOPS_REDIS_URL", "redis://127.0.0.1:6379/0")


def fixed_policy(action: int, *, hidden: int = 8) -> MLPPolicy:
    """An MLP whose greedy choice is always ``action``, whatever the context."""
    d, k = SCHEMA.dim, len(CATALOG)
    bias = np.zeros(k)
    bias[action] = 5.0
    return MLPPolicy(
        CATALOG.ids, ((np.zeros((d, hidden)), np.zeros(hidden)), (np.zeros((hidden, k)), bias))
    )


def save_fixed(
    directory: Path,
    action: int,
    *,
    created_at: float = 1.0,
    evaluation: dict[str, float] | None = None,
) -> Path:
    """An artifact directory of ``fixed_policy(action)``."""
    save_policy(
        directory,
        fixed_policy(action),
        name=NAME,
        schema=SCHEMA,
        catalog=CATALOG,
        created_at=created_at,
        evaluation=evaluation,
    )
    return directory


def register_fixed(registry: Registry, action: int, **fields: object) -> str:
    return registry.register_policy(
        fixed_policy(action), name=NAME, schema=SCHEMA, catalog=CATALOG, actor="test", **fields
    ).version


def require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so Redis tests must not skip: {error}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {error}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each index backend in turn: the registry suite runs against both."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'root' / 'index.db'}"
        return
    require_postgres()
    schema = f"reg_{uuid.uuid4().hex[:12]}"
    yield f"{PG_DSN}?schema={schema}"
    drop_postgres_schema(schema)


@pytest.fixture
def registry(index_url: str, tmp_path: Path) -> Iterator[Registry]:
    with Registry.open(tmp_path / "root", index_url) as reg:
        yield reg


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[Registry]:
    with Registry.open(tmp_path / "root") as reg:
        yield reg


def logged_examples(n: int, *, best: int, seed: int = 0) -> list[Example]:
    """Uniform logging over the catalog; reward 1 when the logged action is ``best``."""
    rng = np.random.default_rng(seed)
    segments = ("bargain", "regular", "premium")
    out = []
    for i in range(n):
        action = int(rng.integers(len(CATALOG)))
        features: dict[str, float | bool | str] = {
            "inventory_ratio": float(rng.uniform(0, 2)),
            "price_ratio": float(rng.uniform(0.5, 1.5)),
            "competitor_ratio": float(rng.uniform(0.5, 1.5)),
            "sales_velocity": float(rng.uniform(0, 5)),
            "hour_sin": float(rng.uniform(-1, 1)),
            "hour_cos": float(rng.uniform(-1, 1)),
            "weekend": bool(rng.integers(2)),
            "window_left": float(rng.uniform(0, 1)),
            "clearance_gap": float(rng.uniform(0, 1)),
            "segment": segments[int(rng.integers(3))],
            "recent_views": int(rng.integers(0, 20)),
        }
        out.append(
            Example(
                event_id=f"e{i:06d}",
                features=features,
                action_ids=CATALOG.ids,
                action_id=CATALOG.ids[action],
                propensity=1.0 / len(CATALOG),
                reward=1.0 if action == best else 0.0,
                reward_spec="r1",
                app="pricing",
                ts=1000.0 + i,
            )
        )
    return out
