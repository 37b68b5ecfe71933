"""Linear policies, evaluated in numpy.

Two forms:

- :class:`LinearPolicy`: one weight row per action, ``score(x, a) = w_a . z + b_a`` with
  ``z = (x - shift) / scale``. Fast and exact, but it scores only the actions it knows.
- :class:`BilinearPolicy`: one weight matrix over context and action features,
  ``score(x, a) = [z, 1]^T W [phi(f_a), 1]`` (a linear model of ``vec([z,1] [phi,1]^T)``),
  so an action added to the catalog today is scored by its features at once.
  ``phi`` is the identity or ``quadratic`` (features and their squares), the second
  for rewards peaked at a best action feature value (a preferred risk level).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.core.errors import ValidationError
from rlops.policies.contract import (
    GREEDY,
    Features,
    Head,
    Probs,
    Scores,
    check_features,
    output_rows,
)

Array = npt.NDArray[np.float64]


def _standardizer(dim: int, shift: Array | None, scale: Array | None) -> tuple[Array, Array]:
    sh = np.zeros(dim) if shift is None else np.asarray(shift, dtype=np.float64)
    sc = np.ones(dim) if scale is None else np.asarray(scale, dtype=np.float64)
    if sh.shape != (dim,) or sc.shape != (dim,):
        raise ValidationError(f"shift and scale must have shape ({dim},)", field="scale")
    if not (np.all(np.isfinite(sh)) and np.all(np.isfinite(sc)) and np.all(sc > 0)):
        raise ValidationError("shift must be finite and scale positive", field="scale")
    return sh, sc


def _finite(name: str, array: Array) -> None:
    if not np.all(np.isfinite(array)):
        raise ValidationError(f"{name} holds a non-finite value", field=name)


@dataclass(frozen=True, eq=False)
class LinearPolicy:
    """Per-action linear scores. ``weights (k, d)``, ``bias (k,)``, rows named by ``action_ids``."""

    family: ClassVar[str] = "linear"
    action_ids: tuple[str, ...]
    weights: Array
    bias: Array
    head: Head = GREEDY
    shift: Array | None = None
    scale: Array | None = None
    _index: dict[str, int] = field(default_factory=dict, repr=False, init=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, init=False)

    def __post_init__(self) -> None:
        weights = np.ascontiguousarray(self.weights, dtype=np.float64)
        bias = np.asarray(self.bias, dtype=np.float64)
        k = len(self.action_ids)
        if weights.ndim != 2 or weights.shape[0] != k or bias.shape != (k,):
            raise ValidationError(
                f"weights must be (k={k}, d) and bias (k,); got {weights.shape}, {bias.shape}",
                field="weights",
            )
        if len(set(self.action_ids)) != k:
            raise ValidationError("action ids must be unique", field="action_ids")
        _finite("weights", weights)
        _finite("bias", bias)
        shift, scale = _standardizer(weights.shape[1], self.shift, self.scale)
        object.__setattr__(self, "action_ids", tuple(self.action_ids))
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "shift", shift)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "_index", {a: i for i, a in enumerate(self.action_ids)})

    @property
    def dim(self) -> int:
        return int(self.weights.shape[1])

    def _folded(self, actions: ActionCatalog) -> tuple[Array, Array]:
        """Weights for ``actions`` with the standardisation folded in: ``x @ W + c``."""
        key = "folded:" + actions.version
        folded = self._cache.get(key)
        if folded is None:
            rows = output_rows(self.action_ids, self._index, actions, self._cache)
            assert self.scale is not None and self.shift is not None
            w = self.weights[rows] / self.scale  # (k, d)
            c = self.bias[rows] - w @ self.shift
            folded = (np.ascontiguousarray(w.T), c)
            self._cache[key] = folded
        return folded

    def scores(self, features: Features, actions: ActionCatalog) -> Scores:
        x = check_features(features, self.dim)
        w, c = self._folded(actions)
        out: Scores = x @ w + c
        return out

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs:
        return self.head(self.scores(features, actions))

    def to_artifact(self) -> tuple[dict[str, Any], dict[str, Array]]:
        assert self.shift is not None and self.scale is not None
        params = {"action_ids": list(self.action_ids), "head": self.head.to_json()}
        arrays = {"weights": self.weights, "bias": self.bias, "shift": self.shift}
        return params, {**arrays, "scale": self.scale}

    @classmethod
    def from_artifact(cls, params: dict[str, Any], arrays: dict[str, Array]) -> LinearPolicy:
        return cls(
            action_ids=tuple(params["action_ids"]),
            weights=arrays["weights"],
            bias=arrays["bias"],
            head=Head.from_json(params["head"]),
            shift=arrays["shift"],
            scale=arrays["scale"],
        )


ActionMap = Literal["identity", "quadratic"]


def action_basis(matrix: npt.NDArray[np.floating[Any]], kind: ActionMap) -> Array:
    """``[phi(f_a), 1]`` for each action row of ``matrix (k, m)``: shape ``(k, m' + 1)``."""
    f = np.asarray(matrix, dtype=np.float64)
    if kind == "quadratic":
        f = np.concatenate([f, f * f], axis=1)
    elif kind != "identity":
        raise ValidationError(f"unknown action map {kind!r}", field="action_map")
    return np.concatenate([f, np.ones((len(f), 1))], axis=1)


def action_basis_width(m: int, kind: ActionMap) -> int:
    return (2 * m if kind == "quadratic" else m) + 1


@dataclass(frozen=True, eq=False)
class BilinearPolicy:
    """One weight matrix ``W (d + 1, m' + 1)`` over context and action features."""

    family: ClassVar[str] = "bilinear"
    matrix: Array
    action_feature_names: tuple[str, ...]
    action_map: ActionMap = "identity"
    head: Head = GREEDY
    shift: Array | None = None
    scale: Array | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, init=False)

    def __post_init__(self) -> None:
        matrix = np.asarray(self.matrix, dtype=np.float64)
        width = action_basis_width(len(self.action_feature_names), self.action_map)
        if matrix.ndim != 2 or matrix.shape[1] != width or matrix.shape[0] < 2:
            raise ValidationError(
                f"matrix must be (d + 1, {width}); got {matrix.shape}", field="matrix"
            )
        _finite("matrix", matrix)
        shift, scale = _standardizer(matrix.shape[0] - 1, self.shift, self.scale)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "action_feature_names", tuple(self.action_feature_names))
        object.__setattr__(self, "shift", shift)
        object.__setattr__(self, "scale", scale)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[0] - 1)

    def _projected(self, actions: ActionCatalog) -> tuple[Array, Array]:
        """``x @ P + c`` gives the scores of ``actions``: ``P (d, k)``, ``c (k,)``."""
        projected = self._cache.get(actions.version)
        if projected is None:
            if tuple(actions.feature_names) != self.action_feature_names:
                raise ValidationError(
                    f"the policy reads action features {list(self.action_feature_names)}; "
                    f"the catalog has {list(actions.feature_names)}",
                    field="actions",
                )
            assert self.scale is not None and self.shift is not None
            per_action = self.matrix @ action_basis(actions.feature_matrix(), self.action_map).T
            p = per_action[:-1] / self.scale[:, None]
            c = per_action[-1] - self.shift @ p
            projected = (np.ascontiguousarray(p), c)
            self._cache[actions.version] = projected
        return projected

    def scores(self, features: Features, actions: ActionCatalog) -> Scores:
        x = check_features(features, self.dim)
        p, c = self._projected(actions)
        out: Scores = x @ p + c
        return out

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs:
        return self.head(self.scores(features, actions))

    def to_artifact(self) -> tuple[dict[str, Any], dict[str, Array]]:
        assert self.shift is not None and self.scale is not None
        params = {
            "action_feature_names": list(self.action_feature_names),
            "action_map": self.action_map,
            "head": self.head.to_json(),
        }
        return params, {"matrix": self.matrix, "shift": self.shift, "scale": self.scale}

    @classmethod
    def from_artifact(cls, params: dict[str, Any], arrays: dict[str, Array]) -> BilinearPolicy:
        return cls(
            matrix=arrays["matrix"],
            action_feature_names=tuple(params["action_feature_names"]),
            action_map=params["action_map"],
            head=Head.from_json(params["head"]),
            shift=arrays["shift"],
            scale=arrays["scale"],
        )
