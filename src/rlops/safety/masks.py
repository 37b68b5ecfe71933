"""Action masks: which actions a context may receive, whatever the policy prefers.

A mask answers ``allowed(features, actions, schema, counts) -> (n, k)`` booleans. Rules
are data (frozen dataclasses that round-trip through JSON), so the safety config of a
release is recorded and reviewed like its weights:

- :class:`StaticMask`: an allow-list or deny-list of action ids;
- :class:`ContextRule`: for contexts where ``feature <op> value``, forbid actions whose
  ``action_feature <op> action_value`` (no aggressive strategy for a low-risk user);
- :class:`PriceBand`: only price changes that land within ``[floor, ceiling]`` times the
  base price, or move towards the band from outside it;
- :class:`FlickerLimit`: after ``max_changes`` price changes for a unit in a day, only
  actions that hold the price; the per-unit counts come from a :class:`ChangeLedger`.
"""

from __future__ import annotations

import math
import operator
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.core.errors import ValidationError
from rlops.core.features import FeatureSchema

Mask = npt.NDArray[np.bool_]
Op = Literal["<", "<=", ">", ">=", "==", "!="]
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
SECONDS_PER_DAY = 86_400.0


class ActionMask(Protocol):
    @property
    def kind(self) -> str: ...

    def allowed(
        self,
        features: npt.NDArray[np.float32],
        actions: ActionCatalog,
        schema: FeatureSchema,
        counts: npt.NDArray[np.int64] | None = None,
    ) -> Mask: ...

    def to_json(self) -> dict[str, Any]: ...


def _column(
    schema: FeatureSchema, features: npt.NDArray[np.float32], name: str
) -> npt.NDArray[Any]:
    if name not in schema.columns:
        raise ValidationError(f"the schema has no feature column {name!r}", field="mask.feature")
    return features[:, schema.columns.index(name)]


def _action_column(actions: ActionCatalog, name: str) -> npt.NDArray[np.float32]:
    if name not in actions.feature_names:
        raise ValidationError(
            f"the catalog has no action feature {name!r}", field="mask.action_feature"
        )
    return actions.feature_matrix()[:, actions.feature_names.index(name)]


def _op(op: str) -> Callable[[Any, Any], Any]:
    if op not in _OPS:
        raise ValidationError(
            f"unknown comparison {op!r}; use one of {list(_OPS)}", field="mask.op"
        )
    return _OPS[op]


def _finite(value: float, name: str) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number", field=f"mask.{name}")


@dataclass(frozen=True, slots=True)
class StaticMask:
    kind: str = "static"
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()

    def allowed(
        self,
        features: npt.NDArray[np.float32],
        actions: ActionCatalog,
        schema: FeatureSchema,
        counts: npt.NDArray[np.int64] | None = None,
    ) -> Mask:
        ok = np.array(
            [(self.allow is None or a in self.allow) and a not in self.deny for a in actions.ids]
        )
        return np.broadcast_to(ok, (len(features), len(actions)))

    def to_json(self) -> dict[str, Any]:
        allow = None if self.allow is None else list(self.allow)
        return {"kind": self.kind, "allow": allow, "deny": list(self.deny)}


@dataclass(frozen=True, slots=True)
class ContextRule:
    feature: str
    op: Op
    value: float
    action_feature: str
    action_op: Op
    action_value: float
    kind: str = "context_rule"

    def __post_init__(self) -> None:
        _op(self.op), _op(self.action_op)
        _finite(self.value, "value")
        _finite(self.action_value, "action_value")

    def allowed(
        self,
        features: npt.NDArray[np.float32],
        actions: ActionCatalog,
        schema: FeatureSchema,
        counts: npt.NDArray[np.int64] | None = None,
    ) -> Mask:
        applies = _op(self.op)(_column(schema, features, self.feature), self.value)
        forbidden = _op(self.action_op)(
            _action_column(actions, self.action_feature), self.action_value
        )
        out: Mask = ~(applies[:, None] & forbidden[None, :])
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "feature": self.feature,
            "op": self.op,
            "value": self.value,
            "action_feature": self.action_feature,
            "action_op": self.action_op,
            "action_value": self.action_value,
        }


@dataclass(frozen=True, slots=True)
class PriceBand:
    floor: float
    ceiling: float
    price_feature: str = "price_ratio"
    change_feature: str = "price_change"
    kind: str = "price_band"

    def __post_init__(self) -> None:
        _finite(self.floor, "floor")
        _finite(self.ceiling, "ceiling")
        if not 0.0 < self.floor <= self.ceiling:
            raise ValidationError("need 0 < floor <= ceiling", field="mask.floor")

    def allowed(
        self,
        features: npt.NDArray[np.float32],
        actions: ActionCatalog,
        schema: FeatureSchema,
        counts: npt.NDArray[np.int64] | None = None,
    ) -> Mask:
        price = _column(schema, features, self.price_feature).astype(np.float64)[:, None]
        change = _action_column(actions, self.change_feature).astype(np.float64)[None, :]
        new = price * (1.0 + change)
        inside = (new >= self.floor - 1e-9) & (new <= self.ceiling + 1e-9)
        # From outside the band, a move towards it (or holding) is allowed: no dead end.
        gap = np.maximum(self.floor - price, 0.0) + np.maximum(price - self.ceiling, 0.0)
        new_gap = np.maximum(self.floor - new, 0.0) + np.maximum(new - self.ceiling, 0.0)
        out: Mask = inside | ((gap > 0) & (new_gap <= gap))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "floor": self.floor,
            "ceiling": self.ceiling,
            "price_feature": self.price_feature,
            "change_feature": self.change_feature,
        }


@dataclass(frozen=True, slots=True)
class FlickerLimit:
    max_changes: int
    change_feature: str = "price_change"
    kind: str = "flicker_limit"

    def __post_init__(self) -> None:
        if not isinstance(self.max_changes, int) or self.max_changes < 0:
            raise ValidationError("max_changes must be an integer >= 0", field="mask.max_changes")

    def allowed(
        self,
        features: npt.NDArray[np.float32],
        actions: ActionCatalog,
        schema: FeatureSchema,
        counts: npt.NDArray[np.int64] | None = None,
    ) -> Mask:
        holds = _action_column(actions, self.change_feature) == 0.0
        if counts is None:
            return np.ones((len(features), len(actions)), dtype=bool)
        exhausted = np.asarray(counts) >= self.max_changes
        out: Mask = ~(exhausted[:, None] & ~holds[None, :])
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "max_changes": self.max_changes,
            "change_feature": self.change_feature,
        }


MASKS: dict[str, type[Any]] = {
    "static": StaticMask,
    "context_rule": ContextRule,
    "price_band": PriceBand,
    "flicker_limit": FlickerLimit,
}


def mask_from_json(data: dict[str, Any]) -> ActionMask:
    kind = data.get("kind")
    if kind not in MASKS:
        raise ValidationError(f"unknown mask {kind!r}; known {list(MASKS)}", field="mask.kind")
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        mask: ActionMask = MASKS[str(kind)](**fields)
    except TypeError as exc:
        raise ValidationError(f"bad {kind} mask: {exc}", field="mask") from None
    return mask


class ChangeLedger:
    """Price changes per (unit, UTC day), for :class:`FlickerLimit`. Thread-safe; keeps
    only the current and previous day so memory stays bounded."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def counts(self, unit_ids: Sequence[str], ts: Sequence[float]) -> npt.NDArray[np.int64]:
        with self._lock:
            return np.array(
                [
                    self._counts.get((u, int(t // SECONDS_PER_DAY)), 0)
                    for u, t in zip(unit_ids, ts, strict=True)
                ],
                dtype=np.int64,
            )

    def record(self, unit_ids: Sequence[str], ts: Sequence[float], changed: Sequence[bool]) -> None:
        with self._lock:
            newest = 0
            for u, t, c in zip(unit_ids, ts, changed, strict=True):
                day = int(t // SECONDS_PER_DAY)
                newest = max(newest, day)
                if c:
                    self._counts[(u, day)] = self._counts.get((u, day), 0) + 1
            for key in [k for k in self._counts if k[1] < newest - 1]:
                del self._counts[key]
