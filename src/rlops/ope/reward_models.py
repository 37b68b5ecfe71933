"""Reward models for DM and DR, cross-fitted so no row is predicted by a model that saw it.

A model maps (context, action) to an expected reward. Design rows are
``[x, e_a, x (x) e_a]``: the context, the action's description ``e_a`` (its feature
vector from the catalog, or a one-hot when there is none) and their outer product, so a
linear model learns one slope per action. Gradient boosting gets ``[x, e_a]`` and finds
interactions itself.

Cross-fitting (Chernozhukov et al. 2018; Narita, Yasui & Yata 2021): split the rows into
K folds, fit on K-1, predict the held-out fold for every action. The DR correction term
then stays unbiased given the model, which in-sample predictions would break.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold

from rlops.core.errors import ValidationError
from rlops.ope.estimate import FloatArray

RewardModelKind = Literal["ridge", "logistic", "gbm"]
KINDS: tuple[RewardModelKind, ...] = ("ridge", "logistic", "gbm")


def design(
    context: FloatArray, action: npt.NDArray[np.int64], action_features: FloatArray, *, cross: bool
) -> FloatArray:
    """Design rows for (context_i, action_i): (n, d + m [+ d*m])."""
    described = action_features[action]
    parts = [context, described]
    if cross:
        parts.append((context[:, :, None] * described[:, None, :]).reshape(context.shape[0], -1))
    out: FloatArray = np.hstack(parts)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RewardModel:
    """A cross-fitted reward model. ``regularization`` is ridge's alpha or 1/C of the
    logistic regression; ``n_folds=1`` fits once on every row (no cross-fitting)."""

    kind: RewardModelKind = "ridge"
    n_folds: int = 5
    seed: int = 0
    regularization: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValidationError(f"kind must be one of {KINDS}, got {self.kind!r}", field="kind")
        if self.n_folds < 1:
            raise ValidationError("n_folds must be at least 1", field="n_folds")
        if self.regularization <= 0.0:
            raise ValidationError("regularization must be positive", field="regularization")

    def _model(self) -> Ridge | LogisticRegression | HistGradientBoostingRegressor:
        if self.kind == "ridge":
            return Ridge(alpha=self.regularization)
        if self.kind == "logistic":
            return LogisticRegression(C=1.0 / self.regularization, max_iter=2000)
        return HistGradientBoostingRegressor(max_iter=100, random_state=self.seed)

    def _predict(
        self,
        model: Ridge | LogisticRegression | HistGradientBoostingRegressor,
        context: FloatArray,
        action_features: FloatArray,
    ) -> FloatArray:
        n, k = context.shape[0], action_features.shape[0]
        rows = np.repeat(np.arange(n), k)
        actions = np.tile(np.arange(k), n)
        x = design(context[rows], actions, action_features, cross=self.kind != "gbm")
        if isinstance(model, LogisticRegression):
            classes = list(model.classes_)
            scores = model.predict_proba(x)[:, classes.index(1.0)]
        else:
            scores = model.predict(x)
        out: FloatArray = np.asarray(scores, dtype=np.float64).reshape(n, k)
        return out

    def fit_predict(
        self,
        *,
        context: npt.ArrayLike,
        action: npt.ArrayLike,
        reward: npt.ArrayLike,
        n_actions: int,
        action_features: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """Cross-fitted predictions ``q_hat`` (n, n_actions) for every logged row.

        ``context`` (n, d), ``action`` (n,) indices, ``reward`` (n,);
        ``action_features`` (n_actions, m) or ``None`` for one-hot actions.
        """
        x = np.asarray(context, dtype=np.float64)
        a = np.asarray(action, dtype=np.int64)
        r = np.asarray(reward, dtype=np.float64)
        if x.ndim != 2 or a.shape != (x.shape[0],) or r.shape != (x.shape[0],):
            raise ValidationError(
                "context (n, d), action (n,), reward (n,) must agree", field="context"
            )
        if not np.all(np.isfinite(x)) or not np.all(np.isfinite(r)):
            raise ValidationError("context and reward must be finite", field="reward")
        if np.any(a < 0) or np.any(a >= n_actions):
            raise ValidationError(f"action indices must lie in [0, {n_actions})", field="action")
        if self.kind == "logistic" and not np.all((r == 0.0) | (r == 1.0)):
            raise ValidationError("a logistic reward model needs 0/1 rewards", field="reward")
        features = (
            np.eye(n_actions)
            if action_features is None
            else np.asarray(action_features, dtype=np.float64)
        )
        if features.ndim != 2 or features.shape[0] != n_actions:
            raise ValidationError(
                f"action_features must have {n_actions} rows", field="action_features"
            )
        n = x.shape[0]
        q_hat = np.empty((n, n_actions))
        if self.n_folds == 1:
            folds = [(np.arange(n), np.arange(n))]
        else:
            if n < self.n_folds:
                raise ValidationError("fewer rows than folds", field="n_folds")
            splitter = KFold(n_splits=self.n_folds, shuffle=True, random_state=self.seed)
            folds = list(splitter.split(x))
        for train, held_out in folds:
            if self.kind == "logistic" and np.unique(r[train]).size == 1:
                q_hat[held_out] = r[train][0]  # one class only: the model is a constant
                continue
            model = self._model()
            model.fit(design(x[train], a[train], features, cross=self.kind != "gbm"), r[train])
            q_hat[held_out] = self._predict(model, x[held_out], features)
        return q_hat
