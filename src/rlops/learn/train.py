"""``rlops train``: a learner, a dataset (or a simulator), and an artifact directory out.

One function per kind of training, each returning the numpy policy and the exact config
that produced it, so the artifact records everything needed to reproduce it:

- offline learners (``bandit``, ``cql``, ``bc``, ``apprentice``) read a Parquet snapshot
  (or any :class:`~rlops.learn.data.LoggedData`); the artifact records the snapshot id
  and the reward version that scored it;
- online learners (``ppo``, ``dqn``) train on the application's simulator;
- ``--parent`` fine-tunes a deployed policy: new data mixed with old, started from the
  parent's weights (CQL) or state (bandits), and served within the KL trust region to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlops.apps.spaces import app_spaces
from rlops.core.errors import ValidationError
from rlops.learn.data import LoggedData
from rlops.policies.artifact import LoadedPolicy, Manifest, SaveablePolicy, save_policy

Progress = Callable[[int, int], None]
OFFLINE = ("bandit", "cql", "bc", "apprentice")
ONLINE = ("ppo", "dqn")
LEARNERS = OFFLINE + ONLINE
App = Literal["pricing", "advisor"]


@dataclass(frozen=True, eq=False)
class Trained:
    """A trained policy, the full config that made it, and what training measured."""

    policy: SaveablePolicy
    learner: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    snapshot_id: str | None = None
    reward_spec_hash: str | None = None
    parent_version: str | None = None


def train_offline(
    learner: str,
    data: LoggedData,
    config: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    parent: LoadedPolicy | None = None,
    progress: Progress | None = None,
) -> Trained:
    """Train ``learner`` on ``data``; ``parent`` warm-starts from a deployed policy."""
    settings = {**(config or {}), "seed": seed}
    metrics: dict[str, Any] = {"rows": len(data)}
    policy: SaveablePolicy
    if learner == "bandit":
        from rlops.learn.bandits import BanditConfig, BanditLearner

        bandit_config = BanditConfig.from_json(dict(config or {}))
        if parent is not None:
            learner_state = BanditLearner.from_policy(
                parent.policy, bandit_config, data.catalog, seed=seed
            )
            learner_state.learn(data)
        else:
            learner_state = BanditLearner.fit(data, bandit_config, seed=seed)
        policy = learner_state.policy()
        full = {**bandit_config.to_json(), "seed": seed}
    elif learner == "cql":
        from rlops.learn.cql import CQLConfig, train_cql

        cql_config = CQLConfig.from_json(settings)
        init = None if parent is None else parent.policy
        result = train_cql(data, cql_config, progress=progress, init=init)
        policy = result.policy
        full = cql_config.to_json()
        metrics |= {"td_loss": result.td_loss, "conservative_loss": result.conservative_loss}
    elif learner == "bc":
        from rlops.learn.bc import BCConfig, train_bc

        bc_config = BCConfig.from_json(settings)
        bc = train_bc(data, bc_config, progress=progress)
        policy = bc.policy
        full = bc_config.to_json()
        metrics |= {"loss": bc.loss}
    elif learner == "apprentice":
        from rlops.learn.apprentice import ApprenticeConfig, train_apprentice

        apprentice_config = ApprenticeConfig.from_json(settings)
        apprentice = train_apprentice(data, apprentice_config, progress=progress)
        policy = apprentice.policy
        full = apprentice_config.to_json()
        metrics |= {"apprentice": apprentice.report.to_json()}
    else:
        raise ValidationError(
            f"unknown offline learner {learner!r}; known {OFFLINE}", field="learner"
        )
    return Trained(
        policy=policy,
        learner=learner,
        config=full,
        metrics=metrics,
        snapshot_id=data.snapshot_id,
        reward_spec_hash=data.reward_spec,
        parent_version=None if parent is None else parent.version,
    )


def save_trained(
    directory: Path | str,
    trained: Trained,
    *,
    app: str,
    name: str | None = None,
    created_at: float,
    created_by: str = "rlops train",
    evaluation: dict[str, Any] | None = None,
) -> Manifest:
    schema, catalog = app_spaces(app)
    return save_policy(
        directory,
        trained.policy,
        name=name or f"{app}-{trained.learner}",
        schema=schema,
        catalog=catalog,
        reward_spec_hash=trained.reward_spec_hash,
        snapshot_id=trained.snapshot_id,
        training_config={"learner": trained.learner, "app": app, **trained.config},
        evaluation={"training": trained.metrics, **(evaluation or {})},
        parent_version=trained.parent_version,
        created_at=created_at,
        created_by=created_by,
    )
