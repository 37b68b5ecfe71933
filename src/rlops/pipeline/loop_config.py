"""What the retraining loop does, as one frozen config that round-trips through JSON.

Defaults are the pricing application's: retrain once 10,000 new examples have joined,
train CQL from scratch on everything logged, hold out the latest fifth of it for the
off-policy check, canary at 10% with its own decaying exploration, and promote only when
the canary is at least as good as production with 95% confidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from rlops.core.errors import ValidationError
from rlops.exploration.explorer import ExplorationConfig
from rlops.exploration.schedules import Schedule
from rlops.registry.gates import GateConfig
from rlops.sim.battery import BatteryConfig

Mode = Literal["offline", "finetune"]
Engine = Literal["local", "ray"]
DAY = 86_400.0


def _positive(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValidationError(f"{name} must be a positive number, got {value!r}", field=name)
    if not math.isfinite(value):
        raise ValidationError(f"{name} must be finite", field=name)


def default_canary_exploration() -> ExplorationConfig:
    """Epsilon 0.2 decaying to 0.02 over the canary's first 5,000 decisions."""
    return ExplorationConfig(
        kind="epsilon", schedule=Schedule(kind="linear", start=0.2, end=0.02, horizon=5000)
    )


def _check_section(values: Mapping[str, Any], name: str, known: set[str]) -> None:
    """A nested section must be an object of known keys; the first stranger is named."""
    if name not in values:
        return
    section = values[name]
    if not isinstance(section, Mapping):
        raise ValidationError(f"{name} must be a JSON object", field=name)
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValidationError(f"unknown {name} settings {unknown}", field=f"{name}.{unknown[0]}")


@dataclass(frozen=True, slots=True)
class CanaryConfig:
    """How a gated candidate is tried on live traffic before it may take production.

    The verdict waits for ``min_decisions`` served and ``min_examples`` joined on the
    canary arm; then ``promote`` when the lower bound of (canary - production) reward per
    decision is at least ``-margin``, ``rollback`` when the upper bound is below
    ``-margin`` or a guardrail alert fires on the canary, and ``rollback`` too when no
    verdict is reached within ``max_seconds`` (an inconclusive canary does not linger).
    """

    share: float = 0.1
    arm: str = "canary"
    alias: str = "canary"
    min_decisions: int = 2000
    min_examples: int = 1000
    level: float = 0.95
    margin: float = 0.0
    max_seconds: float = 21 * DAY
    exploration: ExplorationConfig | None = field(default_factory=default_canary_exploration)

    def __post_init__(self) -> None:
        if not 0.0 < self.share < 1.0:
            raise ValidationError("canary share must lie in (0, 1)", field="canary.share")
        if not 0.0 < self.level < 1.0:
            raise ValidationError("canary level must lie in (0, 1)", field="canary.level")
        if self.min_decisions < 1 or self.min_examples < 2:
            raise ValidationError(
                "canary needs min_decisions >= 1 and min_examples >= 2", field="canary"
            )
        if not (math.isfinite(self.margin) and self.margin >= 0.0):
            raise ValidationError("canary margin must be finite and >= 0", field="canary.margin")
        _positive(self.max_seconds, "canary.max_seconds")


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """The retraining trigger, the learner, the gate and the canary of one application."""

    app: str
    policy_name: str = ""
    learner: str = "cql"
    learner_config: Mapping[str, Any] = field(default_factory=dict)
    mode: Mode = "offline"
    old_fraction: float = 0.5
    min_new_examples: int = 10_000
    schedule_seconds: float | None = None
    history_seconds: float | None = None
    holdout_fraction: float = 0.2
    retry_seconds: float = 600.0
    seed: int = 0
    engine: Engine = "local"
    thresholds: Path | None = None
    gate: GateConfig = field(default_factory=GateConfig)
    battery: BatteryConfig = field(default_factory=BatteryConfig)
    canary: CanaryConfig = field(default_factory=CanaryConfig)

    def __post_init__(self) -> None:
        if self.app not in ("pricing", "advisor"):
            raise ValidationError(f"unknown app {self.app!r}", field="app")
        if not self.policy_name:
            object.__setattr__(self, "policy_name", self.app)
        if self.mode not in ("offline", "finetune"):
            raise ValidationError("mode must be offline or finetune", field="mode")
        if self.engine not in ("local", "ray"):
            raise ValidationError("engine must be local or ray", field="engine")
        if self.min_new_examples < 1:
            raise ValidationError("min_new_examples must be >= 1", field="min_new_examples")
        if not 0.0 <= self.old_fraction < 1.0:
            raise ValidationError("old_fraction must lie in [0, 1)", field="old_fraction")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValidationError("holdout_fraction must lie in (0, 1)", field="holdout_fraction")
        if self.schedule_seconds is not None:
            _positive(self.schedule_seconds, "schedule_seconds")
        if self.history_seconds is not None:
            _positive(self.history_seconds, "history_seconds")
        _positive(self.retry_seconds, "retry_seconds")

    def retry_after(self, failures: int) -> float:
        """Seconds to wait after ``failures`` retrainings in a row failed: ``retry_seconds``,
        doubling with each further failure, at most 64 times as long. A failure (too few
        examples, a learner error) usually persists for a while; retrying at every step
        would fill the journal and the snapshot folder with the same error."""
        return self.retry_seconds * 2.0 ** min(max(failures - 1, 0), 6)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoopConfig:
        """Build from a JSON object; unknown keys are refused by name."""
        if not isinstance(data, Mapping):
            raise ValidationError("a loop config must be a JSON object", field="config")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(f"unknown loop settings {unknown}", field=unknown[0])
        values = dict(data)
        for name, section in (
            ("gate", GateConfig),
            ("battery", BatteryConfig),
            ("canary", CanaryConfig),
        ):
            _check_section(values, name, {f.name for f in fields(section)})
        try:
            if "gate" in values:
                values["gate"] = GateConfig(**values["gate"])
            if "battery" in values:
                battery = dict(values["battery"])
                if "seeds" in battery:
                    battery["seeds"] = tuple(battery["seeds"])
                values["battery"] = BatteryConfig(**battery)
            if "canary" in values:
                canary = dict(values["canary"])
                if canary.get("exploration") is not None:
                    canary["exploration"] = ExplorationConfig.from_json(canary["exploration"])
                values["canary"] = CanaryConfig(**canary)
            if values.get("thresholds") is not None:
                values["thresholds"] = Path(values["thresholds"])
            return cls(**values)
        except TypeError as error:
            raise ValidationError(f"loop config is malformed: {error}", field="config") from None
