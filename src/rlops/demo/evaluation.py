"""What the demo measures: off-policy estimates, the simulator's truth, uplift over the rules.

Off-policy estimates are read from the held-out logs (never trained on), for each policy
*as served* (inside the trust region, without exploration), by three estimators sharing
one bootstrap. The simulator's truth for them is the same served policy's one-step value
on the states the logging policy (the rules as served, with the rig's exploration)
visits in fresh worlds, computed exactly by copying the market per action; an estimate
is *right* when its interval holds that value. Uplift over the rules is
paired per seed (both policies meet the same worlds), with a Student-t interval over
seeds, so it says how sure the figure is, not only what it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlops.apps.spaces import app_spaces
from rlops.core.records import Example
from rlops.ope import IPS, SNIPS, Bootstrap, DoublyRobust, Estimate, estimate_all
from rlops.ope.data import LoggedBandit
from rlops.ope.reward_models import RewardModel
from rlops.policies.stack import renormalised
from rlops.sim.advisor_core import AdvisorConfig
from rlops.sim.baselines import Policy
from rlops.sim.battery import BatteryConfig, BatteryResult, MetricSummary, evaluate
from rlops.sim.counterfactual import advisor_one_step_value, pricing_one_step_value
from rlops.sim.market_data import MarketSpec
from rlops.sim.pricing_core import PricingConfig
from rlops.sim.scenarios import scenario

NORMAL = "normal"


def off_policy(
    app: str,
    examples: Sequence[Example],
    policies: Mapping[str, Policy],
    *,
    resamples: int,
    seed: int = 0,
) -> dict[str, list[Estimate]]:
    """IPS, SNIPS and DR estimates (95% bootstrap) of each policy's value per decision."""
    schema, catalog = app_spaces(app)
    logged = LoggedBandit.from_examples(examples, schema=schema, action_ids=catalog.ids)
    q_hat = RewardModel(kind="ridge", n_folds=3, seed=seed).fit_predict(
        context=logged.context,
        action=logged.action,
        reward=logged.reward,
        n_actions=len(catalog),
    )
    interval = Bootstrap(n_resamples=resamples, seed=seed)
    out = {}
    for name, policy in policies.items():
        target = renormalised(policy.probabilities(logged.context, catalog), logged.allowed)
        out[name] = estimate_all(
            [IPS(), SNIPS(), DoublyRobust()],
            logged.inputs(target, q_hat),
            interval_config=interval,
        )
    return out


def batteries(
    app: str,
    policies: Mapping[str, Policy],
    config: BatteryConfig,
    names: Sequence[str] | None = None,
) -> dict[str, BatteryResult]:
    """Every policy on every scenario (or those named) over the same seeds."""
    chosen = None if names is None else [scenario(app, n) for n in names]
    return {
        name: evaluate(p, app, config=config, scenarios=chosen, policy_name=name)
        for name, p in policies.items()
    }


@dataclass(frozen=True, slots=True)
class Uplift:
    """``policy - rules`` of one metric, paired per seed; ``relative`` over the rules' mean."""

    metric: str
    policy: float
    rules: float
    difference: MetricSummary

    @property
    def relative(self) -> tuple[float, float, float]:
        base = abs(self.rules) if self.rules != 0 else float("nan")
        d = self.difference
        return d.mean / base, d.low / base, d.high / base

    def to_json(self) -> dict[str, Any]:
        rel, rel_low, rel_high = self.relative
        return {
            "metric": self.metric,
            "policy": self.policy,
            "rules": self.rules,
            "difference": self.difference.to_json(),
            "relative": {"mean": rel, "low": rel_low, "high": rel_high},
        }


def uplift(
    policy: BatteryResult, rules: BatteryResult, metric: str, scenario: str = NORMAL
) -> Uplift:
    ours, theirs = policy.metric(scenario, metric), rules.metric(scenario, metric)
    differences = np.asarray(ours.values) - np.asarray(theirs.values)
    return Uplift(metric, ours.mean, theirs.mean, MetricSummary.of(differences.tolist()))


def one_step_truth(
    app: str,
    policies: Mapping[str, Policy],
    logging: Policy,
    *,
    units: int,
    seeds: Sequence[int],
    market: MarketSpec,
    advisor_max_days: int | None,
) -> dict[str, MetricSummary]:
    """Each policy's one-step value on the states ``logging`` visits, per fresh seed.

    What the off-policy estimators target (:mod:`rlops.sim.counterfactual`), so it is the
    value their intervals are held to; the battery's deployed value, where the policy's
    own prices move the market, answers another question (the uplift).
    """
    out = {}
    for name, policy in policies.items():
        if app == "pricing":
            world = PricingConfig(n_products=units)
            values = [pricing_one_step_value(policy, logging, world, s) for s in seeds]
        else:
            users = AdvisorConfig(n_users=units)
            values = [
                advisor_one_step_value(policy, logging, users, market, s, max_days=advisor_max_days)
                for s in seeds
            ]
        out[name] = MetricSummary.of(values)
    return out


def covers(estimate: Estimate, truth: float) -> bool:
    return estimate.low <= truth <= estimate.high
