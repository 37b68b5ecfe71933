"""Reward functions evaluated on arrays of signals, term by term, as the scalar version does.

The vectorized simulator cores score millions of outcomes per second; calling the scalar
:class:`~rlops.rewards.RewardFunction` per outcome would dominate their cost. This module
reads the same spec (term kinds, weights, parameters), so a change to a reward's spec
changes both paths at once; a test holds them equal on random signals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from rlops.core.errors import ValidationError
from rlops.rewards.spec import RewardFunction

FloatArray = npt.NDArray[np.float64]

_ArrayTerm = Callable[[Mapping[str, FloatArray], Mapping[str, Any], tuple[int, ...]], FloatArray]


def _get(
    signals: Mapping[str, FloatArray], params: Mapping[str, Any], key: str, shape: tuple[int, ...]
) -> FloatArray:
    name = params[key]
    if name in signals:
        return np.asarray(signals[name], dtype=np.float64)
    return np.full(shape, float(params.get("default", 0.0)))


def _signal(
    s: Mapping[str, FloatArray], p: Mapping[str, Any], shape: tuple[int, ...]
) -> FloatArray:
    return _get(s, p, "signal", shape)


def _ratio(s: Mapping[str, FloatArray], p: Mapping[str, Any], shape: tuple[int, ...]) -> FloatArray:
    eps = float(p.get("eps", 0.0))
    out: FloatArray = _get(s, p, "numerator", shape) / (_get(s, p, "denominator", shape) + eps)
    return out


def _excess(
    s: Mapping[str, FloatArray], p: Mapping[str, Any], shape: tuple[int, ...]
) -> FloatArray:
    return np.maximum(0.0, _get(s, p, "signal", shape) - float(p["threshold"]))


def _product(
    s: Mapping[str, FloatArray], p: Mapping[str, Any], shape: tuple[int, ...]
) -> FloatArray:
    out: FloatArray = _get(s, p, "left", shape) * _get(s, p, "right", shape)
    return out


_ARRAY_TERMS: dict[str, _ArrayTerm] = {
    "signal": _signal,
    "ratio": _ratio,
    "excess": _excess,
    "product": _product,
}


def reward_components(
    reward: RewardFunction, signals: Mapping[str, npt.ArrayLike]
) -> dict[str, FloatArray]:
    """Each weighted term of ``reward`` for arrays of signals (all of one shape)."""
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in signals.items()}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        raise ValidationError(
            f"signals must share one shape, got {sorted(shapes)}", field="signals"
        )
    shape = shapes.pop()
    out: dict[str, FloatArray] = {}
    for term in reward.spec.terms:
        if term.kind not in _ARRAY_TERMS:
            raise ValidationError(f"no array form for term kind {term.kind!r}", field="kind")
        out[term.name] = term.weight * _ARRAY_TERMS[term.kind](arrays, term.params, shape)
    return out


def vector_reward(reward: RewardFunction, signals: Mapping[str, npt.ArrayLike]) -> FloatArray:
    """The total reward per element: the sum of the weighted terms, in spec order."""
    components = list(reward_components(reward, signals).values())
    total = np.zeros_like(components[0])
    for component in components:
        total = total + component
    return total
