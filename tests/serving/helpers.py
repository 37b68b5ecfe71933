"""Building servers and policies for the service tests."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rlops.policies.mlp import MLPPolicy
from rlops.registry.registry import Registry
from rlops.serving.server import ServerConfig
from rlops.sim.pricing_core import PRICING_ACTIONS, PRICING_SCHEMA

ADMIN = "admin-token-0123456789"
DECIDE = "decide-token-0123456789"
OUTCOMES = "outcomes-token-0123456789"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def write_tokens(path: Path, open_scopes: tuple[str, ...] = ("decide", "outcomes")) -> Path:
    path.write_text(
        json.dumps(
            {
                "tokens": [
                    {"name": "ops", "token": ADMIN, "scopes": ["admin"]},
                    {"name": "shop", "token": DECIDE, "scopes": ["decide"]},
                    {"name": "events", "token": OUTCOMES, "scopes": ["outcomes"]},
                ],
                "open_scopes": list(open_scopes),
            }
        )
    )
    return path


def server_config(tmp_path: Path, **changes: Any) -> ServerConfig:
    tokens = changes.pop("tokens", None) or str(write_tokens(tmp_path / "tokens.json"))
    base = ServerConfig(
        app="pricing",
        registry=str(tmp_path / "registry"),
        log=f"sqlite:///{tmp_path / 'log.db'}",
        features="memory",
        tokens=tokens,
        watch=False,
    )
    return replace(base, **changes)


def mlp_policy(seed: int = 0, *, head_temperature: float | None = None) -> MLPPolicy:
    """A random pricing MLP (Q-values, greedy head): a stand-in for a trained policy."""
    rng = np.random.default_rng(seed)
    sizes = [PRICING_SCHEMA.dim, 32, len(PRICING_ACTIONS)]
    layers = tuple(
        (rng.normal(size=(a, b)) / np.sqrt(a), rng.normal(size=b) * 0.1)
        for a, b in itertools.pairwise(sizes)
    )
    return MLPPolicy(PRICING_ACTIONS.ids, layers)


def register_mlp(registry_dir: Path | str, seed: int = 0, *, promote_to: str | None = None) -> str:
    with Registry.open(registry_dir) as registry:
        record = registry.register_policy(
            mlp_policy(seed), name="pricing", schema=PRICING_SCHEMA, catalog=PRICING_ACTIONS
        )
        if promote_to is not None:
            registry.promote(
                "pricing", record.version, alias=promote_to, force=True, reason="test setup"
            )
        return record.version
