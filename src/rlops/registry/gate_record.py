"""The gate record: the evidence, stored in the registry, that a version may go to production.

Three checks, each kept with its numbers so a reviewer can see why it passed:

- ``battery``: the simulator's scenario battery against the app's thresholds
  (:mod:`rlops.sim.gate`);
- ``off_policy``: the candidate's lower confidence bound on recent logs is at least the
  point estimate of the policy it would replace, by the same estimator on the same logs
  (the logging policy's value when nothing is in production yet);
- ``kl``: the mean ``KL(candidate || baseline)`` over recent contexts is within its bound.

``against_version`` pins the production version the candidate was compared with: once
production has moved, the comparison is stale and promotion asks for a new gate.
``passed`` is derived from the checks, never stored apart from them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rlops.core.actions import check_id
from rlops.core.errors import ValidationError
from rlops.registry.records import fields_of


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValidationError(f"{name} must be a number", field=name)
    return float(value)


def _derived_removed(data: object) -> dict[str, Any]:
    """A check's JSON without ``passed``, which is recomputed from its numbers on load."""
    if not isinstance(data, Mapping):
        raise ValidationError("a gate check must be a JSON object", field="gate")
    return {k: v for k, v in data.items() if k != "passed"}


@dataclass(frozen=True, slots=True)
class BatteryCheck:
    """The battery verdict: ``checks`` are the gate's one-line descriptions, failures first."""

    app: str
    passed: bool
    seeds: tuple[int, ...]
    checks: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "passed": self.passed,
            "seeds": list(self.seeds),
            "checks": list(self.checks),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatteryCheck:
        f = fields_of(cls, data)
        return cls(
            app=str(f["app"]),
            passed=bool(f["passed"]),
            seeds=tuple(int(s) for s in f["seeds"]),
            checks=tuple(str(c) for c in f["checks"]),
        )


@dataclass(frozen=True, slots=True)
class OffPolicyCheck:
    """``low >= reference``: the candidate's lower bound against the incumbent's estimate.

    ``value, low, high`` are the candidate's estimate and interval at ``level``;
    ``reference`` is the incumbent's point estimate (``reference_policy`` names it: a
    version, or ``logging``); ``n`` the logged examples both were estimated on.
    """

    estimator: str
    value: float
    low: float
    high: float
    level: float
    reference: float
    reference_policy: str
    n: int
    ess: float

    def __post_init__(self) -> None:
        for name in ("value", "low", "high", "level", "reference", "ess"):
            object.__setattr__(self, name, _number(getattr(self, name), name))
        if self.n < 1:
            raise ValidationError("an off-policy check needs at least one example", field="n")

    @property
    def passed(self) -> bool:
        return math.isfinite(self.low) and self.low >= self.reference

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__} | {
            "passed": self.passed
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OffPolicyCheck:
        return cls(**fields_of(cls, data))


@dataclass(frozen=True, slots=True)
class KlCheck:
    """``mean_kl <= bound``: nats per context, against ``baseline`` floored at ``floor``."""

    mean_kl: float
    max_kl: float
    bound: float
    floor: float
    baseline: str
    n: int

    def __post_init__(self) -> None:
        for name in ("mean_kl", "max_kl", "bound", "floor"):
            object.__setattr__(self, name, _number(getattr(self, name), name))
        if not (math.isfinite(self.bound) and self.bound >= 0.0):
            raise ValidationError("the KL bound must be a finite number >= 0", field="kl_bound")

    @property
    def passed(self) -> bool:
        return self.mean_kl <= self.bound

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__} | {
            "passed": self.passed
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KlCheck:
        return cls(**fields_of(cls, data))


@dataclass(frozen=True, slots=True)
class GateRecord:
    """The gate's verdict on ``name``/``version``, compared with ``against_version``."""

    name: str
    version: str
    against_version: str | None
    battery: BatteryCheck
    off_policy: OffPolicyCheck
    kl: KlCheck
    created_at: float
    created_by: str

    def __post_init__(self) -> None:
        check_id(self.name, "name")
        check_id(self.version, "version")
        if self.against_version is not None:
            check_id(self.against_version, "against_version")
        object.__setattr__(self, "created_at", _number(self.created_at, "created_at"))

    @property
    def passed(self) -> bool:
        return self.battery.passed and self.off_policy.passed and self.kl.passed

    def failures(self) -> list[str]:
        """Why it failed, one line per failed check (empty when it passed)."""
        out = []
        if not self.battery.passed:
            failing = [c for c in self.battery.checks if c.startswith("FAIL")]
            out.append("battery: " + "; ".join(failing or ["failed"]))
        if not self.off_policy.passed:
            o = self.off_policy
            out.append(
                f"off-policy: {o.estimator} lower bound {o.low:.4g} < {o.reference_policy} "
                f"estimate {o.reference:.4g}"
            )
        if not self.kl.passed:
            out.append(f"kl: mean KL {self.kl.mean_kl:.4g} > bound {self.kl.bound:.4g}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "against_version": self.against_version,
            "passed": self.passed,
            "battery": self.battery.to_json(),
            "off_policy": self.off_policy.to_json(),
            "kl": self.kl.to_json(),
            "created_at": self.created_at,
            "created_by": self.created_by,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateRecord:
        f = fields_of(cls, data)
        off_policy, kl = _derived_removed(f["off_policy"]), _derived_removed(f["kl"])
        return cls(
            name=f["name"],
            version=f["version"],
            against_version=f["against_version"],
            battery=BatteryCheck.from_json(f["battery"]),
            off_policy=OffPolicyCheck.from_json(off_policy),
            kl=KlCheck.from_json(kl),
            created_at=f["created_at"],
            created_by=str(f["created_by"]),
        )
