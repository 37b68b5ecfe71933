"""Multi-layer perceptron policies evaluated in numpy, whatever trained them.

``z = (x - shift) / scale``; ``h_{i+1} = act(h_i W_i + b_i)`` with no activation after
the last layer, whose outputs are one per action in ``action_ids``: Q-values (CQL, DQN;
usually a greedy head) or logits (BC, PPO; a softmax head). Weights are stored
``(in, out)`` so a forward pass is plain ``h @ W + b``; torch's ``(out, in)`` is
transposed once at export.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from rlops.policies.linear import _finite, _standardizer

Array = npt.NDArray[np.float64]
Activation = Literal["relu", "tanh"]
# Rows per forward pass: a 2,048 x 64 float64 hidden layer is 1 MiB, within L2 cache.
# Measured on a 2-core machine, batches of 10,000 (2x64 MLP) ran ~35% faster in blocks.
BLOCK_ROWS = 2048


@dataclass(frozen=True, eq=False)
class MLPPolicy:
    """``layers``: ``(W (in, out), b (out,))`` pairs; the last layer has one output per action."""

    family: ClassVar[str] = "mlp"
    action_ids: tuple[str, ...]
    layers: tuple[tuple[Array, Array], ...]
    activation: Activation = "relu"
    output: Literal["q", "logits"] = "q"
    head: Head = GREEDY
    shift: Array | None = None
    scale: Array | None = None
    _index: dict[str, int] = field(default_factory=dict, repr=False, init=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, init=False)

    def __post_init__(self) -> None:
        if self.activation not in ("relu", "tanh"):
            raise ValidationError(f"unknown activation {self.activation!r}", field="activation")
        if self.output not in ("q", "logits"):
            raise ValidationError(f"unknown output {self.output!r}", field="output")
        if not self.layers:
            raise ValidationError("an MLP needs at least one layer", field="layers")
        layers = []
        width = None
        for i, (w, b) in enumerate(self.layers):
            w = np.ascontiguousarray(w, dtype=np.float64)
            b = np.asarray(b, dtype=np.float64)
            if (
                w.ndim != 2
                or b.shape != (w.shape[1],)
                or (width is not None and w.shape[0] != width)
            ):
                raise ValidationError(
                    f"layer {i}: weight {w.shape} and bias {b.shape} do not chain", field="layers"
                )
            _finite(f"layers.{i}", w)
            _finite(f"layers.{i}", b)
            width = w.shape[1]
            layers.append((w, b))
        if width != len(self.action_ids) or len(set(self.action_ids)) != len(self.action_ids):
            raise ValidationError(
                f"the last layer has {width} outputs for {len(self.action_ids)} unique actions",
                field="action_ids",
            )
        shift, scale = _standardizer(layers[0][0].shape[0], self.shift, self.scale)
        # Fold the standardisation into the first layer: one fewer pass per request.
        w0, b0 = layers[0]
        folded = (w0 / scale[:, None], b0 - (shift / scale) @ w0)
        object.__setattr__(self, "action_ids", tuple(self.action_ids))
        object.__setattr__(self, "layers", tuple(layers))
        object.__setattr__(self, "shift", shift)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "_index", {a: i for i, a in enumerate(self.action_ids)})
        object.__setattr__(self, "_cache", {"first": folded})

    @property
    def dim(self) -> int:
        return int(self.layers[0][0].shape[0])

    def _plan(self, actions: ActionCatalog) -> tuple[tuple[Array, Array], ...]:
        """The layers with standardisation folded in and the last cut to ``actions``."""
        plan = self._cache.get("plan:" + actions.version)
        if plan is None:
            rows = output_rows(self.action_ids, self._index, actions, self._cache)
            layers = [self._cache["first"], *self.layers[1:]]
            w, b = layers[-1]
            layers[-1] = (np.ascontiguousarray(w[:, rows]), b[rows])
            plan = tuple(layers)
            self._cache["plan:" + actions.version] = plan
        return plan

    def scores(self, features: Features, actions: ActionCatalog) -> Scores:
        x = check_features(features, self.dim)
        plan = self._plan(actions)
        if len(x) <= BLOCK_ROWS:
            return self._forward(x, plan)
        # Large batches go through in blocks: each block's hidden layers stay in cache, and
        # a million-row batch no longer allocates a (n, width) float64 array per layer.
        out: Scores = np.empty((len(x), plan[-1][0].shape[1]))
        for start in range(0, len(x), BLOCK_ROWS):
            out[start : start + BLOCK_ROWS] = self._forward(x[start : start + BLOCK_ROWS], plan)
        return out

    def _forward(self, x: Features, plan: tuple[tuple[Array, Array], ...]) -> Scores:
        h: Array = x.astype(np.float64, copy=False)
        last = len(plan) - 1
        for i, (w, b) in enumerate(plan):
            h = h @ w
            h += b
            if i < last:
                if self.activation == "relu":
                    np.maximum(h, 0.0, out=h)
                else:
                    np.tanh(h, out=h)
        return h

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs:
        return self.head(self.scores(features, actions))

    def to_artifact(self) -> tuple[dict[str, Any], dict[str, Array]]:
        assert self.shift is not None and self.scale is not None
        params = {
            "action_ids": list(self.action_ids),
            "activation": self.activation,
            "output": self.output,
            "head": self.head.to_json(),
            "n_layers": len(self.layers),
        }
        arrays = {"shift": self.shift, "scale": self.scale}
        for i, (w, b) in enumerate(self.layers):
            arrays[f"w{i}"] = w
            arrays[f"b{i}"] = b
        return params, arrays

    @classmethod
    def from_artifact(cls, params: dict[str, Any], arrays: dict[str, Array]) -> MLPPolicy:
        n = int(params["n_layers"])
        return cls(
            action_ids=tuple(params["action_ids"]),
            layers=tuple((arrays[f"w{i}"], arrays[f"b{i}"]) for i in range(n)),
            activation=params["activation"],
            output=params["output"],
            head=Head.from_json(params["head"]),
            shift=arrays["shift"],
            scale=arrays["scale"],
        )


def mlp_from_torch_layers(
    action_ids: Sequence[str],
    weights: Sequence[tuple[npt.NDArray[Any], npt.NDArray[Any]]],
    **kwargs: Any,
) -> MLPPolicy:
    """An :class:`MLPPolicy` from torch-layout ``(W (out, in), b (out,))`` pairs."""
    layers = tuple(
        (np.asarray(w, dtype=np.float64).T, np.asarray(b, dtype=np.float64)) for w, b in weights
    )
    return MLPPolicy(action_ids=tuple(action_ids), layers=layers, **kwargs)
