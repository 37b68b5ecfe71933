"""The records every stage and every backend share: decisions, outcomes, examples.

They are frozen and validated on construction, so anything that holds one may trust it:
a log's ``append`` only has to check types, and bad input fails before anything is
written. Each round-trips through JSON with ``to_json``/``from_json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rlops.core.actions import check_id
from rlops.core.errors import ValidationError
from rlops.core.features import FeatureValue


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name} must be a number, got {value!r}", field=name)
    try:
        number = float(value)
    except OverflowError:
        raise ValidationError(f"{name} is too large: {value!r}", field=name) from None
    if not math.isfinite(number):
        raise ValidationError(f"{name} must be finite, got {value!r}", field=name)
    return number


def _label(value: object, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 256 or "\x00" in value:
        raise ValidationError(
            f"{name} must be a non-empty string of at most 256 characters", field=name
        )
    return value


def check_features(values: object, name: str = "features") -> dict[str, FeatureValue]:
    """Feature values as logged: names to finite numbers, booleans or category strings."""
    if not isinstance(values, Mapping):
        raise ValidationError(f"{name} must be a mapping of name to value", field=name)
    out: dict[str, FeatureValue] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise ValidationError(f"{name} has a non-string or empty name {key!r}", field=name)
        if isinstance(value, str) and "\x00" in value:
            raise ValidationError(f"{name}.{key} contains a NUL character", field=f"{name}.{key}")
        if isinstance(value, bool | str):
            out[key] = value
        elif isinstance(value, int):
            if not -(2**63) <= value < 2**63:
                raise ValidationError(
                    f"{name}.{key} is outside the 64-bit range", field=f"{name}.{key}"
                )
            out[key] = value
        else:
            out[key] = _finite(value, f"{name}.{key}")
    return out


def check_signals(values: object, name: str = "signals") -> dict[str, float]:
    """Outcome signals: names to finite numbers (booleans count as 0/1)."""
    if not isinstance(values, Mapping) or not values:
        raise ValidationError(f"{name} must be a non-empty mapping of name to number", field=name)
    out: dict[str, float] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise ValidationError(f"{name} has a non-string or empty name {key!r}", field=name)
        out[key] = float(value) if isinstance(value, bool) else _finite(value, f"{name}.{key}")
    return out


@dataclass(frozen=True, slots=True)
class Decision:
    """One served decision, with the propensity of its action and the version that chose it.

    ``features`` are the values actually used (after the feature store and defaults), so
    training never depends on a later state of the store. ``ts`` is Unix seconds.
    """

    event_id: str
    ts: float
    app: str
    unit_id: str
    arm: str
    policy_version: str
    features: Mapping[str, FeatureValue]
    action_ids: tuple[str, ...]
    action_id: str
    propensity: float
    explored: bool = False

    def __post_init__(self) -> None:
        check_id(self.event_id, "event_id")
        object.__setattr__(self, "ts", _finite(self.ts, "ts"))
        check_id(self.app, "app")
        _label(self.unit_id, "unit_id")
        _label(self.arm, "arm")
        _label(self.policy_version, "policy_version")
        object.__setattr__(self, "features", check_features(self.features))
        ids = tuple(self.action_ids)
        if not ids or len(set(ids)) != len(ids):
            raise ValidationError("action_ids must be non-empty and unique", field="action_ids")
        object.__setattr__(self, "action_ids", ids)
        if self.action_id not in ids:
            raise ValidationError(
                f"action_id {self.action_id!r} is not among the allowed action_ids",
                field="action_id",
            )
        propensity = _finite(self.propensity, "propensity")
        if not 0.0 < propensity <= 1.0:
            raise ValidationError(
                f"propensity must be in (0, 1], got {self.propensity!r}", field="propensity"
            )
        object.__setattr__(self, "propensity", propensity)
        if not isinstance(self.explored, bool):
            raise ValidationError("explored must be a boolean", field="explored")

    @classmethod
    def trusted(
        cls,
        event_id: str,
        ts: float,
        app: str,
        unit_id: str,
        arm: str,
        policy_version: str,
        features: Mapping[str, FeatureValue],
        action_ids: tuple[str, ...],
        action_id: str,
        propensity: float,
        explored: bool,
    ) -> Decision:
        """A decision from parts that were each checked where they came from.

        The server's hot path builds every field from a validated request, the feature
        schema, the catalog and the serving stack; checking them all again here cost
        more than the rest of a decision. Only the propensity, the one number computed
        on the way, is checked.
        """
        if not 0.0 < propensity <= 1.0:
            raise ValidationError(
                f"propensity must be in (0, 1], got {propensity!r}", field="propensity"
            )
        self = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(self, "event_id", event_id)
        setattr_(self, "ts", ts)
        setattr_(self, "app", app)
        setattr_(self, "unit_id", unit_id)
        setattr_(self, "arm", arm)
        setattr_(self, "policy_version", policy_version)
        setattr_(self, "features", features)
        setattr_(self, "action_ids", action_ids)
        setattr_(self, "action_id", action_id)
        setattr_(self, "propensity", propensity)
        setattr_(self, "explored", explored)
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "ts": self.ts,
            "app": self.app,
            "unit_id": self.unit_id,
            "arm": self.arm,
            "policy_version": self.policy_version,
            "features": dict(self.features),
            "action_ids": list(self.action_ids),
            "action_id": self.action_id,
            "propensity": self.propensity,
            "explored": self.explored,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        try:
            return cls(
                event_id=data["event_id"],
                ts=data["ts"],
                app=data["app"],
                unit_id=data["unit_id"],
                arm=data["arm"],
                policy_version=data["policy_version"],
                features=data["features"],
                action_ids=tuple(data["action_ids"]),
                action_id=data["action_id"],
                propensity=data["propensity"],
                explored=data.get("explored", False),
            )
        except KeyError as missing:
            raise ValidationError(f"decision is missing {missing}", field=str(missing)) from None
        except TypeError as error:
            raise ValidationError(f"decision is malformed: {error}", field="decision") from None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A raw observation about a decision, arriving seconds to days after it.

    Logs are idempotent on ``outcome_id``: a retried delivery counts once.
    """

    outcome_id: str
    event_id: str
    ts: float
    signals: Mapping[str, float]

    def __post_init__(self) -> None:
        check_id(self.outcome_id, "outcome_id")
        check_id(self.event_id, "event_id")
        object.__setattr__(self, "ts", _finite(self.ts, "ts"))
        object.__setattr__(self, "signals", check_signals(self.signals))

    @classmethod
    def trusted(
        cls, outcome_id: str, event_id: str, ts: float, signals: Mapping[str, float]
    ) -> Outcome:
        """An outcome read back from our own log, where it was validated on append.

        Re-checking every row on each join step cost more than the join itself.
        Never use it for anything that arrives from outside.
        """
        self = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(self, "outcome_id", outcome_id)
        setattr_(self, "event_id", event_id)
        setattr_(self, "ts", ts)
        setattr_(self, "signals", signals)
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome_id": self.outcome_id,
            "event_id": self.event_id,
            "ts": self.ts,
            "signals": dict(self.signals),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outcome:
        try:
            return cls(
                outcome_id=data["outcome_id"],
                event_id=data["event_id"],
                ts=data["ts"],
                signals=data["signals"],
            )
        except KeyError as missing:
            raise ValidationError(f"outcome is missing {missing}", field=str(missing)) from None
        except TypeError as error:
            raise ValidationError(f"outcome is malformed: {error}", field="outcome") from None


@dataclass(frozen=True, slots=True)
class Example:
    """A decision joined with its outcomes and scored by one reward version.

    ``revision`` counts re-joins: a late outcome produces revision + 1 with ``late=True``;
    the current example of ``(event_id, reward_spec)`` is its highest revision.
    ``signals`` are the aggregated outcome signals the reward was computed from, and
    ``components`` each weighted reward term, so an example can be re-scored and inspected.
    ``defaulted`` marks a window that closed with no outcome (``reward`` is the default).
    """

    event_id: str
    features: Mapping[str, FeatureValue]
    action_ids: tuple[str, ...]
    action_id: str
    propensity: float
    reward: float
    reward_spec: str
    late: bool = False
    app: str = "default"
    ts: float = 0.0
    unit_id: str = ""
    arm: str = ""
    policy_version: str = ""
    revision: int = 0
    joined_at: float = 0.0
    n_outcomes: int = 0
    defaulted: bool = False
    signals: Mapping[str, float] = field(default_factory=dict)
    components: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reward", _finite(self.reward, "reward"))
        if self.revision < 0:
            raise ValidationError("revision must be >= 0", field="revision")

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "features": dict(self.features),
            "action_ids": list(self.action_ids),
            "action_id": self.action_id,
            "propensity": self.propensity,
            "reward": self.reward,
            "reward_spec": self.reward_spec,
            "late": self.late,
            "app": self.app,
            "ts": self.ts,
            "unit_id": self.unit_id,
            "arm": self.arm,
            "policy_version": self.policy_version,
            "revision": self.revision,
            "joined_at": self.joined_at,
            "n_outcomes": self.n_outcomes,
            "defaulted": self.defaulted,
            "signals": dict(self.signals),
            "components": dict(self.components),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Example:
        fields = dict(data)
        fields["action_ids"] = tuple(fields["action_ids"])
        return cls(**fields)
