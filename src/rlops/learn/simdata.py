"""Logged data straight from the simulators, for learning tests and the demo.

The same records could go through the decision log and the join (and
:mod:`rlops.sim.logging` does exactly that); this path skips the database to produce
hundreds of thousands of rows in seconds, scoring each step with the same reward spec
(:func:`rlops.sim.vector_reward.vector_reward`), so a learner sees what the join would
give it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlops.core.actions import ActionCatalog
from rlops.core.errors import ValidationError
from rlops.core.features import FeatureSchema
from rlops.core.records import Example
from rlops.learn.data import LoggedData
from rlops.rewards.seeds import advisor_reward, pricing_reward
from rlops.sim.advisor_core import ADVISOR_ACTIONS, ADVISOR_SCHEMA, AdvisorConfig
from rlops.sim.baselines import Policy
from rlops.sim.logging import features_by_name
from rlops.sim.market_data import MarketSpec
from rlops.sim.pricing_core import PRICING_ACTIONS, PRICING_SCHEMA, PricingConfig
from rlops.sim.rollout import advisor_run, pricing_run
from rlops.sim.vector_reward import vector_reward


def _stacked(
    feats: list[Any],
    acts: list[Any],
    props: list[Any],
    rews: list[Any],
    units: list[Any],
    ts: list[Any],
    unit_prefix: str,
    schema: FeatureSchema,
    catalog: ActionCatalog,
    reward_spec: str,
) -> LoggedData:
    """Per-step arrays of a run stacked into one dataset; every action was allowed."""
    n = sum(len(a) for a in acts)
    return LoggedData(
        features=np.concatenate(feats),
        actions=np.concatenate(acts),
        propensities=np.concatenate(props),
        rewards=np.concatenate(rews),
        allowed=np.ones((n, len(catalog)), dtype=bool),
        unit_ids=np.char.add(unit_prefix, np.concatenate(units).astype(np.str_)),
        ts=np.concatenate(ts),
        schema=schema,
        catalog=catalog,
        reward_spec=reward_spec,
    )


def pricing_logs(
    policy: Policy,
    config: PricingConfig,
    seed: int,
    *,
    windows: int = 1,
    catalog: ActionCatalog = PRICING_ACTIONS,
) -> LoggedData:
    """One row per customer visit; ``unit_ids`` are products, ``ts`` simulated hours."""
    feats, acts, props, rews, units, ts = [], [], [], [], [], []
    for step in pricing_run(policy, config, seed, windows=windows, catalog=catalog):
        assert step.pricing is not None
        feats.append(step.features)
        acts.append(step.actions)
        props.append(step.propensities)
        rews.append(vector_reward(pricing_reward, step.pricing.signals))
        units.append(np.arange(config.n_products))
        ts.append(step.pricing.hours)
    return _stacked(
        feats,
        acts,
        props,
        rews,
        units,
        ts,
        "product-",
        PRICING_SCHEMA,
        catalog,
        pricing_reward.hash,
    )


def advisor_logs(
    policy: Policy,
    config: AdvisorConfig,
    market: MarketSpec,
    seed: int,
    *,
    max_days: int | None = None,
    catalog: ActionCatalog = ADVISOR_ACTIONS,
) -> LoggedData:
    """One row per (user, trading day); ``unit_ids`` are users, ``ts`` the day index."""
    feats, acts, props, rews, units, ts = [], [], [], [], [], []
    for step in advisor_run(policy, config, market, seed, max_days=max_days, catalog=catalog):
        assert step.advisor is not None
        feats.append(step.features)
        acts.append(step.actions)
        props.append(step.propensities)
        rews.append(vector_reward(advisor_reward, step.advisor.signals))
        units.append(np.arange(config.n_users))
        ts.append(np.full(config.n_users, float(step.advisor.day)))
    return _stacked(
        feats, acts, props, rews, units, ts, "user-", ADVISOR_SCHEMA, catalog, advisor_reward.hash
    )


def as_examples(data: LoggedData, *, app: str, policy_version: str = "sim") -> list[Example]:
    """The rows as joined :class:`Example` records (for snapshots built without a log)."""
    if data.reward_spec is None:
        raise ValidationError("the data has no reward version to tag examples with", field="data")
    ids = data.catalog.ids
    return [
        Example(
            event_id=f"{app}-{i:09d}",
            features=features_by_name(data.schema, data.features[i]),
            action_ids=tuple(a for a, ok in zip(ids, data.allowed[i], strict=True) if ok),
            action_id=ids[int(data.actions[i])],
            propensity=float(data.propensities[i]),
            reward=float(data.rewards[i]),
            reward_spec=data.reward_spec,
            app=app,
            ts=float(data.ts[i]),
            unit_id=str(data.unit_ids[i]),
            policy_version=policy_version,
            n_outcomes=1,
        )
        for i in range(len(data))
    ]
