"""Thresholds a candidate must reach on the battery, and the gate that checks them.

A thresholds file (JSON, or TOML read with ``tomllib``) lists rules::

    {"app": "pricing", "thresholds": [
        {"metric": "reward", "scenario": "*", "op": ">=", "value": -0.01,
         "relative_to": "baseline_delta"},
        {"metric": "clearance_rate", "scenario": "normal", "op": ">=", "value": 0.5}]}

``relative_to`` is ``absolute`` (compare the candidate's mean with ``value``),
``baseline_delta`` (compare candidate - baseline with ``value``; a negative value is a
tolerance) or ``baseline_ratio`` (candidate / baseline, meaningful for positive metrics).
``scenario`` ``"*"`` applies the rule to every scenario. Means are compared, since the
seeds are paired; the report carries the intervals.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rlops.core.errors import ValidationError
from rlops.sim.baselines import Policy, named_policy
from rlops.sim.battery import BatteryConfig, BatteryResult

if TYPE_CHECKING:
    from rlops.scale.engine import EngineConfig

Relative = Literal["absolute", "baseline_delta", "baseline_ratio"]
_RELATIVE = ("absolute", "baseline_delta", "baseline_ratio")


@dataclass(frozen=True, slots=True)
class Threshold:
    metric: str
    value: float
    op: Literal[">=", "<="] = ">="
    scenario: str = "*"
    relative_to: Relative = "absolute"

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValidationError(f"threshold op must be >= or <=, got {self.op!r}", field="op")
        if self.relative_to not in _RELATIVE:
            raise ValidationError(f"relative_to must be one of {_RELATIVE}", field="relative_to")
        if not math.isfinite(self.value):
            raise ValidationError("threshold value must be finite", field="value")

    def describe(self) -> str:
        lhs = {
            "absolute": self.metric,
            "baseline_delta": f"{self.metric} - baseline",
            "baseline_ratio": f"{self.metric} / baseline",
        }[self.relative_to]
        return f"{lhs} {self.op} {self.value:g}"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Threshold:
        try:
            return cls(
                metric=str(data["metric"]),
                value=float(data["value"]),
                op=data.get("op", ">="),
                scenario=str(data.get("scenario", "*")),
                relative_to=data.get("relative_to", "absolute"),
            )
        except KeyError as missing:
            raise ValidationError(f"threshold is missing {missing}", field=str(missing)) from None


@dataclass(frozen=True, slots=True)
class Thresholds:
    app: str
    rules: tuple[Threshold, ...]

    @property
    def needs_baseline(self) -> bool:
        return any(rule.relative_to != "absolute" for rule in self.rules)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Thresholds:
        rules = tuple(Threshold.from_json(rule) for rule in data.get("thresholds", ()))
        if not rules:
            raise ValidationError(
                "a thresholds file needs at least one threshold", field="thresholds"
            )
        return cls(app=str(data["app"]), rules=rules)

    @classmethod
    def load(cls, path: str | Path) -> Thresholds:
        """Read a ``.json`` or ``.toml`` thresholds file."""
        path = Path(path)
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        return cls.from_json(data)

    @classmethod
    def default(cls, app: str) -> Thresholds:
        """The thresholds shipped with rlops for ``app``."""
        source = resources.files("rlops.sim").joinpath("thresholds", f"{app}.json")
        return cls.from_json(json.loads(source.read_text()))


@dataclass(frozen=True, slots=True)
class ThresholdCheck:
    """One rule on one scenario: the observed left-hand side against the required value."""

    threshold: Threshold
    scenario: str
    observed: float
    passed: bool

    def describe(self) -> str:
        verdict = "ok" if self.passed else "FAIL"
        return (
            f"{verdict} {self.scenario}: {self.threshold.describe()} (observed {self.observed:.4g})"
        )


@dataclass(frozen=True, slots=True)
class GateResult:
    passed: bool
    checks: tuple[ThresholdCheck, ...]
    candidate: BatteryResult
    baseline: BatteryResult | None

    @property
    def failures(self) -> tuple[ThresholdCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def report(self) -> str:
        lines = [
            f"gate {'PASSED' if self.passed else 'FAILED'} "
            f"({len(self.failures)} of {len(self.checks)} checks failed)"
        ]
        lines += [c.describe() for c in self.checks]
        return "\n".join(lines)


def check(
    candidate: BatteryResult, thresholds: Thresholds, baseline: BatteryResult | None = None
) -> GateResult:
    """Every threshold on every scenario it names; pure over the two battery results."""
    if thresholds.needs_baseline and baseline is None:
        raise ValidationError(
            "these thresholds are relative to the baseline: pass its battery result",
            field="baseline",
        )
    checks: list[ThresholdCheck] = []
    names = [r.scenario for r in candidate.scenarios]
    for rule in thresholds.rules:
        targets = names if rule.scenario == "*" else [rule.scenario]
        for scenario in targets:
            if scenario not in names:
                raise ValidationError(
                    f"threshold names unknown scenario {scenario!r}", field="scenario"
                )
            observed = candidate.metric(scenario, rule.metric).mean
            if baseline is not None and rule.relative_to != "absolute":
                reference = baseline.metric(scenario, rule.metric).mean
                if rule.relative_to == "baseline_delta":
                    observed = observed - reference
                else:
                    observed = observed / reference if reference != 0.0 else math.inf
            ok = observed >= rule.value if rule.op == ">=" else observed <= rule.value
            checks.append(ThresholdCheck(rule, scenario, observed, bool(ok)))
    return GateResult(all(c.passed for c in checks), tuple(checks), candidate, baseline)


def run_gate(
    policy: Policy,
    thresholds: Thresholds,
    *,
    config: BatteryConfig | None = None,
    policy_name: str = "candidate",
    engine: str | EngineConfig = "local",
) -> GateResult:
    """Run the battery on ``policy`` (and on the baseline rules if a rule needs them).

    ``engine`` ``ray`` fans the rollouts out over Ray actors; the verdict is the same.
    """
    from rlops.scale.battery import run_battery

    candidate = run_battery(policy, thresholds.app, config, engine=engine, policy_name=policy_name)
    baseline = None
    if thresholds.needs_baseline:
        baseline = run_battery(
            named_policy(thresholds.app, "baseline"),
            thresholds.app,
            config,
            engine=engine,
            policy_name="baseline",
        )
    return check(candidate, thresholds, baseline)
