"""Training data as arrays: logged bandit feedback and episode transitions.

Every learner trains from :class:`LoggedData`, built from joined examples (a Parquet
snapshot, the log) or straight from a simulator run. Features are built by name through
the policy's :class:`FeatureSchema` and actions are indices into its
:class:`ActionCatalog`, so a model can never read a column or an action by the wrong
position. Pricing is sequential: :meth:`LoggedData.transitions` chains each unit's
decisions in time order into ``(s, a, r, s', done)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.core.errors import ValidationError
from rlops.core.features import FeatureSchema
from rlops.core.records import Example
from rlops.store.snapshot import read_snapshot

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Transitions:
    """``obs (n, d)``, ``actions (n,)``, ``rewards (n,)``, ``next_obs (n, d)``, ``dones (n,)``.

    ``allowed (n, k)`` and ``next_allowed (n, k)``: the actions available in ``s`` and in
    ``s'`` (``None``: every action), so a learner never bootstraps from one it cannot take.
    """

    obs: F32
    actions: I64
    rewards: F64
    next_obs: F32
    dones: npt.NDArray[np.bool_]
    allowed: npt.NDArray[np.bool_] | None = None
    next_allowed: npt.NDArray[np.bool_] | None = None

    def __len__(self) -> int:
        return len(self.actions)


@dataclass(frozen=True, eq=False)
class LoggedData:
    """Logged bandit feedback, one row per decision.

    ``features (n, d)`` float32 in schema column order; ``actions (n,)`` catalog indices
    of the chosen actions; ``propensities (n,)`` the logging policy's probability of them;
    ``rewards (n,)``; ``allowed (n, k)`` which catalog actions the decision could choose;
    ``unit_ids (n,)`` and ``ts (n,)`` to rebuild each unit's trajectory.
    """

    features: F32
    actions: I64
    propensities: F64
    rewards: F64
    allowed: npt.NDArray[np.bool_]
    unit_ids: npt.NDArray[np.str_]
    ts: F64
    schema: FeatureSchema
    catalog: ActionCatalog
    snapshot_id: str | None = None
    reward_spec: str | None = None

    def __post_init__(self) -> None:
        n = len(self.actions)
        k = len(self.catalog)
        shapes = {
            "features": (self.features.shape, (n, self.schema.dim)),
            "propensities": (self.propensities.shape, (n,)),
            "rewards": (self.rewards.shape, (n,)),
            "allowed": (self.allowed.shape, (n, k)),
            "unit_ids": (self.unit_ids.shape, (n,)),
            "ts": (self.ts.shape, (n,)),
        }
        for name, (got, want) in shapes.items():
            if got != want:
                raise ValidationError(f"{name} has shape {got}, expected {want}", field=name)
        if n and (self.actions.min() < 0 or self.actions.max() >= k):
            raise ValidationError("an action index is outside the catalog", field="actions")
        if n and not np.all(self.allowed[np.arange(n), self.actions]):
            raise ValidationError("a chosen action was not allowed", field="actions")
        if np.any(~(self.propensities > 0.0)) or np.any(self.propensities > 1.0 + 1e-9):
            raise ValidationError("propensities must lie in (0, 1]", field="propensities")
        if not np.all(np.isfinite(self.rewards)):
            raise ValidationError("rewards must be finite", field="rewards")

    def __len__(self) -> int:
        return len(self.actions)

    @classmethod
    def from_examples(
        cls,
        examples: Sequence[Example],
        schema: FeatureSchema,
        catalog: ActionCatalog,
        *,
        reward_spec: str | None = None,
        snapshot_id: str | None = None,
    ) -> LoggedData:
        """The current revision of each decision's example, under one reward version.

        Examples whose chosen action is not in ``catalog`` (a retired action) are dropped:
        a model over ``catalog`` cannot learn from them.
        """
        specs = {e.reward_spec for e in examples}
        if reward_spec is None:
            if len(specs) > 1:
                raise ValidationError(
                    f"examples hold several reward versions {sorted(specs)}; choose one",
                    field="reward_spec",
                )
            reward_spec = next(iter(specs), None)
        current: dict[str, Example] = {}
        for e in examples:
            if e.reward_spec != reward_spec:
                continue
            held = current.get(e.event_id)
            if held is None or e.revision > held.revision:
                current[e.event_id] = e
        rows = sorted(
            (e for e in current.values() if e.action_id in catalog),
            key=lambda e: (e.ts, e.event_id),
        )
        index = {a: i for i, a in enumerate(catalog.ids)}
        allowed = np.zeros((len(rows), len(catalog)), dtype=bool)
        for i, e in enumerate(rows):
            for a in e.action_ids:
                if a in index:
                    allowed[i, index[a]] = True
        return cls(
            features=schema.matrix([e.features for e in rows]),
            actions=np.array([index[e.action_id] for e in rows], dtype=np.int64),
            propensities=np.array([e.propensity for e in rows], dtype=np.float64),
            rewards=np.array([e.reward for e in rows], dtype=np.float64),
            allowed=allowed,
            unit_ids=np.array([e.unit_id for e in rows], dtype=np.str_),
            ts=np.array([e.ts for e in rows], dtype=np.float64),
            schema=schema,
            catalog=catalog,
            snapshot_id=snapshot_id,
            reward_spec=reward_spec,
        )

    @classmethod
    def from_snapshot(
        cls,
        path: Path | str,
        schema: FeatureSchema,
        catalog: ActionCatalog,
        *,
        reward_spec: str | None = None,
    ) -> LoggedData:
        snapshot = read_snapshot(path)
        return cls.from_examples(
            snapshot.examples(),
            schema,
            catalog,
            reward_spec=reward_spec,
            snapshot_id=snapshot.info.content_id,
        )

    def subset(self, rows: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> LoggedData:
        return LoggedData(
            features=self.features[rows],
            actions=self.actions[rows],
            propensities=self.propensities[rows],
            rewards=self.rewards[rows],
            allowed=self.allowed[rows],
            unit_ids=self.unit_ids[rows],
            ts=self.ts[rows],
            schema=self.schema,
            catalog=self.catalog,
            snapshot_id=self.snapshot_id,
            reward_spec=self.reward_spec,
        )

    def transitions(self) -> Transitions:
        """Each unit's decisions in time order, chained: ``s'`` is the unit's next state.

        A unit's last logged decision is terminal (``done``), so nothing is bootstrapped
        from a state the log never saw.
        """
        order = np.lexsort((self.ts, self.unit_ids))
        units = self.unit_ids[order]
        last = np.ones(len(order), dtype=bool)
        if len(order) > 1:
            last[:-1] = units[1:] != units[:-1]
        following = np.where(last, order, np.roll(order, -1))
        return Transitions(
            obs=self.features[order],
            actions=self.actions[order],
            rewards=self.rewards[order],
            next_obs=self.features[following],
            dones=last,
            allowed=self.allowed[order],
            next_allowed=self.allowed[following],
        )


def concat(parts: Sequence[LoggedData]) -> LoggedData:
    """One dataset from several with the same schema and catalog (old + new data)."""
    if not parts:
        raise ValidationError("nothing to concatenate", field="parts")
    first = parts[0]
    for p in parts[1:]:
        if p.schema.version != first.schema.version or p.catalog.version != first.catalog.version:
            raise ValidationError("datasets differ in schema or catalog", field="parts")
    return LoggedData(
        features=np.concatenate([p.features for p in parts]),
        actions=np.concatenate([p.actions for p in parts]),
        propensities=np.concatenate([p.propensities for p in parts]),
        rewards=np.concatenate([p.rewards for p in parts]),
        allowed=np.concatenate([p.allowed for p in parts]),
        unit_ids=np.concatenate([p.unit_ids for p in parts]),
        ts=np.concatenate([p.ts for p in parts]),
        schema=first.schema,
        catalog=first.catalog,
        snapshot_id=None,
        reward_spec=first.reward_spec,
    )
