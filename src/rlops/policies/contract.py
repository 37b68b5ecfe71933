"""The one policy contract: action probabilities for a batch of contexts.

Every policy, however it was trained, answers ``probabilities(features (n, d), actions)
-> (n, k)``: rows over the catalog's actions, in catalog order, summing to 1. So every
decision has a propensity and every logged day is an off-policy test set.

Families that score actions (linear, MLP) also answer ``scores`` and turn scores into
probabilities through a :class:`Head`: greedy (one-hot on the best score) or softmax with
a temperature. Masks and softmax exploration work on scores where a policy has them.
This module is numpy only: serving never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.core.errors import NotFoundError, ValidationError

Features = npt.NDArray[np.float32]
Probs = npt.NDArray[np.float64]
Scores = npt.NDArray[np.float64]


@runtime_checkable
class Policy(Protocol):
    """Anything that serves: rows over ``actions`` summing to 1."""

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs: ...


@runtime_checkable
class ScoringPolicy(Protocol):
    """A policy with a score per action (Q-values, logits, expected rewards)."""

    head: Head

    def scores(self, features: Features, actions: ActionCatalog) -> Scores: ...

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs: ...


@dataclass(frozen=True, slots=True)
class Head:
    """How scores become probabilities.

    ``greedy``: one-hot on the highest score (the first on ties), as a Q-learner acts.
    ``softmax``: ``exp(score / temperature)`` normalised, as a logits policy acts.
    """

    kind: Literal["greedy", "softmax"] = "greedy"
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("greedy", "softmax"):
            raise ValidationError(f"unknown head {self.kind!r}", field="head.kind")
        if not (self.temperature > 0.0 and np.isfinite(self.temperature)):
            raise ValidationError("temperature must be positive", field="head.temperature")

    def __call__(self, scores: Scores) -> Probs:
        if self.kind == "greedy":
            return greedy(scores)
        return softmax(scores, self.temperature)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "temperature": self.temperature}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Head:
        return cls(kind=data.get("kind", "greedy"), temperature=float(data.get("temperature", 1.0)))


GREEDY = Head()


def greedy(scores: Scores) -> Probs:
    """One-hot rows on each row's best finite score (``-inf`` marks a masked action)."""
    n, k = scores.shape
    out = np.zeros((n, k))
    out[np.arange(n), np.argmax(scores, axis=1)] = 1.0
    return out


def softmax(scores: Scores, temperature: float = 1.0) -> Probs:
    """Row softmax of ``scores / temperature``, stable for large scores and ``-inf``."""
    z = scores / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: Probs = e / e.sum(axis=1, keepdims=True)
    return out


def output_rows(
    known: tuple[str, ...], index: dict[str, int], actions: ActionCatalog, cache: dict[str, Any]
) -> npt.NDArray[np.intp]:
    """The rows of a model's per-action outputs for ``actions``, cached by catalog version.

    A model scores only the actions it was trained on; asking for another is an error
    naming it (families with action features score new actions instead).
    """
    rows = cache.get(actions.version)
    if rows is None:
        missing = [a for a in actions.ids if a not in index]
        if missing:
            raise NotFoundError(
                f"the policy has no output for actions {missing}; it knows {list(known)}",
                field="actions",
            )
        rows = np.array([index[a] for a in actions.ids], dtype=np.intp)
        cache[actions.version] = rows
    out: npt.NDArray[np.intp] = rows
    return out


def check_features(features: Features, dim: int) -> Features:
    """Features as a 2-d float array of width ``dim``; one vector becomes one row."""
    x = np.asarray(features)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValidationError(
            f"features must have shape (n, {dim}); got {np.shape(features)}", field="features"
        )
    return x


def kl_divergence(p: Probs, q: Probs) -> npt.NDArray[np.float64]:
    """Row-wise ``KL(p || q) = sum p log(p / q)`` in nats.

    ``inf`` where ``q`` misses part of ``p``'s support.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0.0, p * (np.log(p) - np.log(q)), 0.0)
    out: npt.NDArray[np.float64] = terms.sum(axis=1)
    return out
