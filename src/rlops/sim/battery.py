"""The scenario battery: a policy on every scenario, several seeds each, metrics with intervals.

Each metric of a scenario is computed once per seed; the battery reports the mean over
seeds and a Student-t confidence interval of that mean (``mean ± t * sd / sqrt(n)``;
with one seed the interval collapses to the mean). Seeds are shared across policies, so
a candidate and the baseline face the same worlds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rlops.rewards.seeds import advisor_reward, pricing_reward
from rlops.sim.baselines import Policy
from rlops.sim.rollout import advisor_run, pricing_run
from rlops.sim.scenarios import AdvisorScenario, PricingScenario, Scenario, scenarios_for
from rlops.sim.vector_reward import vector_reward

PRICING_METRICS: tuple[str, ...] = (
    "reward",
    "conversion_rate",
    "abandonment_rate",
    "margin_rate",
    "clearance_rate",
)
ADVISOR_METRICS: tuple[str, ...] = (
    "reward",
    "sharpe",
    "portfolio_return",
    "max_drawdown",
    "follow_rate",
    "engagement",
)


@dataclass(frozen=True, slots=True)
class BatteryConfig:
    """How much simulation each scenario gets. Tests shrink these; the gate uses defaults."""

    seeds: tuple[int, ...] = (0, 1, 2)
    pricing_products: int = 200
    pricing_windows: int = 1
    advisor_users: int = 200
    advisor_max_days: int | None = None
    confidence: float = 0.95


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """A metric's mean over seeds with its confidence interval, and the per-seed values."""

    mean: float
    low: float
    high: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float], confidence: float = 0.95) -> MetricSummary:
        from scipy import stats

        array = np.asarray(values, dtype=np.float64)
        mean = float(array.mean())
        if len(array) < 2:
            return cls(mean, mean, mean, tuple(array.tolist()))
        half = float(stats.t.ppf(0.5 + confidence / 2.0, len(array) - 1)) * float(
            array.std(ddof=1) / math.sqrt(len(array))
        )
        return cls(mean, mean - half, mean + half, tuple(array.tolist()))

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "values": list(self.values)}


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    scenario: str
    metrics: Mapping[str, MetricSummary]


@dataclass(frozen=True, slots=True)
class BatteryResult:
    """Every scenario's metrics for one policy on one app."""

    app: str
    policy: str
    seeds: tuple[int, ...]
    scenarios: tuple[ScenarioResult, ...]
    metric_names: tuple[str, ...] = field(default=())

    def metric(self, scenario: str, metric: str) -> MetricSummary:
        for result in self.scenarios:
            if result.scenario == scenario:
                return result.metrics[metric]
        raise KeyError(f"no scenario {scenario!r} in this battery")

    def table(self) -> str:
        """A plain-text table: one row per scenario, ``mean [low, high]`` per metric."""
        names = self.metric_names
        header = ["scenario", *names]
        rows = [
            [
                r.scenario,
                *(
                    f"{r.metrics[m].mean:.4f} [{r.metrics[m].low:.4f}, {r.metrics[m].high:.4f}]"
                    for m in names
                ),
            ]
            for r in self.scenarios
        ]
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
        lines = [f"{self.app} battery, policy {self.policy}, seeds {list(self.seeds)}"]
        for row in [header, *rows]:
            lines.append("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "policy": self.policy,
            "seeds": list(self.seeds),
            "scenarios": {
                r.scenario: {m: s.to_json() for m, s in r.metrics.items()} for r in self.scenarios
            },
        }


def pricing_metrics(
    policy: Policy, scenario: PricingScenario, seed: int, config: BatteryConfig
) -> dict[str, float]:
    """One seed's pricing metrics, per customer visit (clearance per closed window)."""
    world = scenario.config.with_products(config.pricing_products)
    totals = dict.fromkeys(
        ("reward", "visits", "converted", "abandoned", "margin", "met", "windows"), 0.0
    )
    for step in pricing_run(policy, world, seed, windows=config.pricing_windows):
        result = step.pricing
        assert result is not None
        s = result.signals
        totals["reward"] += float(vector_reward(pricing_reward, s).sum())
        totals["visits"] += len(s["converted"])
        totals["converted"] += float(s["converted"].sum())
        totals["abandoned"] += float(s["abandoned_cart"].sum())
        totals["margin"] += float((s["converted"] * s["margin_rate"]).sum())
        totals["met"] += float(s["clearance_met"].sum())
        totals["windows"] += float(result.window_end.sum())
    visits = totals["visits"]
    return {
        "reward": totals["reward"] / visits,
        "conversion_rate": totals["converted"] / visits,
        "abandonment_rate": totals["abandoned"] / visits,
        "margin_rate": totals["margin"] / max(totals["converted"], 1.0),
        "clearance_rate": totals["met"] / max(totals["windows"], 1.0),
    }


def advisor_metrics(
    policy: Policy, scenario: AdvisorScenario, seed: int, config: BatteryConfig
) -> dict[str, float]:
    """One seed's advisor metrics, averaged over every (user, day) decision."""
    world = replace(scenario.config, n_users=config.advisor_users)
    sums = dict.fromkeys(ADVISOR_METRICS, 0.0)
    count = 0
    for step in advisor_run(policy, world, scenario.market, seed, max_days=config.advisor_max_days):
        result = step.advisor
        assert result is not None
        s = result.signals
        sums["reward"] += float(vector_reward(advisor_reward, s).sum())
        sums["sharpe"] += float((s["portfolio_return"] / (s["volatility"] + 1e-8)).sum())
        sums["portfolio_return"] += float(s["portfolio_return"].sum())
        sums["max_drawdown"] += float(s["max_drawdown"].sum())
        sums["follow_rate"] += float(result.followed.sum())
        sums["engagement"] += float(s["engagement_score"].sum())
        count += len(result.followed)
    return {name: value / count for name, value in sums.items()}


def seed_metrics(
    policy: Policy, scenario: Scenario, seed: int, config: BatteryConfig
) -> dict[str, float]:
    """One (scenario, seed) rollout's metrics: the unit of work an engine may farm out."""
    if isinstance(scenario, PricingScenario):
        return pricing_metrics(policy, scenario, seed, config)
    return advisor_metrics(policy, scenario, seed, config)


def summarise(
    app: str,
    policy_name: str,
    config: BatteryConfig,
    scenarios: Sequence[Scenario],
    per_seed: Sequence[Sequence[Mapping[str, float]]],
) -> BatteryResult:
    """The battery from ``per_seed[i][j]``: scenario ``i``'s metrics on ``config.seeds[j]``."""
    results = []
    for scenario, rows in zip(scenarios, per_seed, strict=True):
        metrics = {
            name: MetricSummary.of([m[name] for m in rows], config.confidence) for name in rows[0]
        }
        results.append(ScenarioResult(scenario.name, metrics))
    names = PRICING_METRICS if app == "pricing" else ADVISOR_METRICS
    return BatteryResult(app, policy_name, tuple(config.seeds), tuple(results), names)


def evaluate(
    policy: Policy,
    app: str,
    *,
    config: BatteryConfig | None = None,
    scenarios: Sequence[Scenario] | None = None,
    policy_name: str = "candidate",
) -> BatteryResult:
    """Run ``policy`` on every scenario of ``app`` (or those given) over every seed."""
    config = config or BatteryConfig()
    chosen = tuple(scenarios) if scenarios is not None else scenarios_for(app)
    per_seed = [[seed_metrics(policy, s, seed, config) for seed in config.seeds] for s in chosen]
    return summarise(app, policy_name, config, chosen, per_seed)
