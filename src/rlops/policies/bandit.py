"""Ridge-regression bandit policies, evaluated in numpy: a frozen snapshot of a learner.

The learner (:mod:`rlops.learn.bandits`) holds a ridge model of the reward and updates it
event by event; serving needs only its estimate ``theta_hat = A^{-1} b`` and ``A^{-1}``,
which is what this family stores. Contexts are standardised, ``z = (x - shift) / scale``,
and augmented with a constant, ``z1 = [z, 1]`` (width ``q = d + 1``). Two forms:

- ``disjoint``: one ridge model per action id (Li et al. 2010, LinUCB with disjoint
  linear models): ``theta (k, q)``, ``a_inv (k, q, q)``. An action id the model never
  saw gets the ridge prior, zero mean and ``A^{-1} = I / lambda``, so LinUCB is
  optimistic about it and Thompson sampling tries it.
- ``shared``: one ridge model over context-action features
  ``x = vec([z, 1] [phi(f_a), 1]^T)`` (row-major, as :class:`~rlops.policies.linear.
  BilinearPolicy`'s ``W``; ``phi`` is :func:`~rlops.policies.linear.action_basis`):
  ``theta (p,)`` with ``p = q * (m' + 1)``, ``a_inv (p, p)``. Every action, including one
  added today, is scored by its features; its uncertainty comes from how far its
  features lie from what was tried.

Both forms reduce, for a given catalog, to a mean vector and a covariance per action,
``theta_a (q,)`` and ``S_a (q, q)``, so ``mean = z1 . theta_a`` and ``width =
sqrt(z1^T S_a z1)`` (for ``shared``, ``S_a[i, i'] = sum_{j, j'} phi_aj A^{-1}[(i, j),
(i', j')] phi_aj'``). These are cached per catalog version. How estimates become
probabilities is :mod:`rlops.policies.bandit_rules`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.core.errors import ValidationError
from rlops.policies.bandit_rules import DecisionRule, argmax_frequencies, decide, upper_confidence
from rlops.policies.contract import Features, Probs, Scores, check_features
from rlops.policies.linear import (
    ActionMap,
    _finite,
    _standardizer,
    action_basis,
    action_basis_width,
)

Array = npt.NDArray[np.float64]
Form = Literal["disjoint", "shared"]
FORMS: tuple[Form, ...] = ("disjoint", "shared")


def augment(z: npt.NDArray[np.floating[Any]]) -> Array:
    """``[z, 1]``: contexts ``(n, d)`` with a constant column, ``(n, d + 1)``."""
    return np.concatenate([np.asarray(z, dtype=np.float64), np.ones((len(z), 1))], axis=1)


def joint_features(z1: Array, phi: Array) -> Array:
    """``vec(z1_i phi_i^T)`` per row: ``z1 (n, q)``, ``phi (n, m)`` -> ``(n, q * m)``."""
    out: Array = (z1[:, :, None] * phi[:, None, :]).reshape(len(z1), z1.shape[1] * phi.shape[1])
    return out


def psd_factor(cov: Array) -> Array:
    """``L`` with ``L L^T = cov`` for symmetric PSD matrices ``(..., q, q)``.

    Cholesky where it succeeds; ``A^{-1}`` after many rank-one updates can be PSD only to
    rounding, and then an eigendecomposition with tiny negative eigenvalues clipped
    gives a factor instead of failing.
    """
    sym = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    try:
        out = np.asarray(np.linalg.cholesky(sym), dtype=np.float64)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(sym)
        out = np.asarray(v * np.sqrt(np.clip(w, 0.0, None))[..., None, :], dtype=np.float64)
    return out


def action_key(action_id: str) -> int:
    """A stable 64-bit integer for an action id (seeds its Thompson draws)."""
    return int.from_bytes(hashlib.sha256(action_id.encode()).digest()[:8], "little")


@dataclass(frozen=True, eq=False)
class BanditPolicy:
    """A ridge bandit snapshot: ``theta``, ``a_inv`` and the rule that reads them."""

    family: ClassVar[str] = "bandit"
    form: Form
    rule: DecisionRule
    theta: Array
    a_inv: Array
    ridge_lambda: float = 1.0
    action_ids: tuple[str, ...] = ()  # disjoint: the row of each model
    action_feature_names: tuple[str, ...] = ()  # shared: the action features phi reads
    action_map: ActionMap = "identity"
    shift: Array | None = None
    scale: Array | None = None
    # Not constructor arguments, so dataclasses.replace() starts a fresh cache.
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValidationError(f"unknown form {self.form!r}; known {list(FORMS)}", field="form")
        if not (np.isfinite(self.ridge_lambda) and self.ridge_lambda > 0.0):
            raise ValidationError("ridge_lambda must be positive", field="ridge_lambda")
        theta = np.ascontiguousarray(self.theta, dtype=np.float64)
        a_inv = np.ascontiguousarray(self.a_inv, dtype=np.float64)
        if self.form == "disjoint":
            k = len(self.action_ids)
            ok = theta.ndim == 2 and theta.shape[0] == k and theta.shape[1] >= 1
            ok = ok and a_inv.shape == (k, theta.shape[1], theta.shape[1])
            if len(set(self.action_ids)) != k:
                raise ValidationError("action ids must be unique", field="action_ids")
            q = theta.shape[1] if theta.ndim == 2 else 0
        else:
            if self.action_map not in ("identity", "quadratic"):
                raise ValidationError(f"unknown action map {self.action_map!r}", field="action_map")
            width = action_basis_width(len(self.action_feature_names), self.action_map)
            ok = theta.ndim == 1 and len(theta) % width == 0 and len(theta) >= width
            ok = ok and a_inv.shape == (len(theta), len(theta))
            q = len(theta) // width if theta.ndim == 1 else 0
        if not ok or q < 1:
            raise ValidationError(
                f"{self.form} bandit: theta {theta.shape} and a_inv {a_inv.shape} do not agree",
                field="theta",
            )
        _finite("theta", theta)
        _finite("a_inv", a_inv)
        shift, scale = _standardizer(q - 1, self.shift, self.scale)
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "a_inv", a_inv)
        object.__setattr__(self, "action_ids", tuple(self.action_ids))
        object.__setattr__(self, "action_feature_names", tuple(self.action_feature_names))
        object.__setattr__(self, "shift", shift)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "_index", {a: i for i, a in enumerate(self.action_ids)})

    @property
    def dim(self) -> int:
        """Context width ``d`` (before the constant column)."""
        assert self.shift is not None
        return int(self.shift.shape[0])

    def context(self, features: Features) -> Array:
        """``z1 = [(x - shift) / scale, 1]`` for ``features (n, d)``."""
        x = check_features(features, self.dim)
        assert self.shift is not None and self.scale is not None
        return augment((np.asarray(x, dtype=np.float64) - self.shift) / self.scale)

    def per_action(self, actions: ActionCatalog) -> tuple[Array, Array]:
        """``theta_a (k, q)`` and covariance ``S_a (k, q, q)`` for ``actions``, cached."""
        key = "per_action:" + actions.version
        cached = self._cache.get(key)
        if cached is None:
            cached = self._disjoint(actions) if self.form == "disjoint" else self._shared(actions)
            self._cache[key] = cached
        out: tuple[Array, Array] = cached
        return out

    def _disjoint(self, actions: ActionCatalog) -> tuple[Array, Array]:
        q = self.theta.shape[1]
        means = np.zeros((len(actions), q))
        covs = np.broadcast_to(np.eye(q) / self.ridge_lambda, (len(actions), q, q)).copy()
        known = [(j, self._index[a]) for j, a in enumerate(actions.ids) if a in self._index]
        if known:
            rows, models = (np.array(v, dtype=np.intp) for v in zip(*known, strict=True))
            means[rows] = self.theta[models]
            covs[rows] = self.a_inv[models]
        return means, covs

    def _basis(self, actions: ActionCatalog) -> Array:
        if tuple(actions.feature_names) != self.action_feature_names:
            raise ValidationError(
                f"the policy reads action features {list(self.action_feature_names)}; "
                f"the catalog has {list(actions.feature_names)}",
                field="actions",
            )
        return action_basis(actions.feature_matrix(), self.action_map)

    def _shared(self, actions: ActionCatalog) -> tuple[Array, Array]:
        phi = self._basis(actions)  # (k, m)
        m = phi.shape[1]
        q = len(self.theta) // m
        means = phi @ self.theta.reshape(q, m).T
        blocks = self.a_inv.reshape(q, m, q, m)
        covs = np.einsum("kj,ijml,kl->kim", phi, blocks, phi, optimize=True)
        return means, covs

    def estimates(self, features: Features, actions: ActionCatalog) -> tuple[Array, Array]:
        """``(mean, width)``, each ``(n, k)``: ``theta_a . z1`` and ``sqrt(z1^T S_a z1)``."""
        z1 = self.context(features)
        means, covs = self.per_action(actions)
        quad = np.einsum("knq,nq->nk", np.matmul(z1[None], covs), z1)
        return z1 @ means.T, np.sqrt(np.clip(quad, 0.0, None))

    def scores(self, features: Features, actions: ActionCatalog) -> Scores:
        """The index the rule ranks actions by: the ridge estimate of the reward, plus
        ``alpha`` times its width under LinUCB. ``(n, k)``."""
        if self.rule.kind == "linucb":
            mean, width = self.estimates(features, actions)
            return upper_confidence(mean, width, self.rule.alpha)
        means, _ = self.per_action(actions)
        out: Scores = self.context(features) @ means.T
        return out

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs:
        if self.rule.kind == "thompson":
            return argmax_frequencies(self.context(features), self.posterior_draws(actions))
        if self.rule.kind == "linucb":
            mean, width = self.estimates(features, actions)
        else:
            mean = self.scores(features, actions)
            width = np.zeros_like(mean)
        return decide(self.rule, mean, width)

    def posterior_draws(self, actions: ActionCatalog) -> Array:
        """``M`` draws of each action's parameters, ``(M, k, q)``, fixed by the seed.

        ``theta ~ N(theta_hat, v^2 A^{-1})``. Disjoint: each action's draws come from a
        generator seeded by ``(seed, action id)``, so they do not depend on which other
        actions a catalog holds. Shared: one draw of the whole ``theta`` per sample,
        mapped to every action through its features (the draws are correlated across
        actions, as the posterior is).
        """
        key = "draws:" + actions.version
        draws = self._cache.get(key)
        if draws is None:
            m, v, seed = self.rule.thompson_samples, self.rule.thompson_scale, self.rule.seed
            if self.form == "disjoint":
                means, covs = self.per_action(actions)
                factors = psd_factor(covs)  # (k, q, q)
                noise = np.stack(
                    [
                        np.random.default_rng([seed, action_key(a)]).standard_normal(
                            (m, means.shape[1])
                        )
                        for a in actions.ids  # one generator per action, not per request row
                    ],
                    axis=1,
                )  # (M, k, q)
                draws = means[None] + v * np.einsum("kqr,skr->skq", factors, noise)
            else:
                phi = self._basis(actions)
                noise = np.random.default_rng(seed).standard_normal((m, len(self.theta)))
                thetas = self.theta[None] + v * noise @ psd_factor(self.a_inv).T  # (M, p)
                q = len(self.theta) // phi.shape[1]
                draws = np.einsum("sqj,kj->skq", thetas.reshape(m, q, -1), phi)
            self._cache[key] = draws
        out: Array = draws
        return out

    def to_artifact(self) -> tuple[dict[str, Any], dict[str, Array]]:
        assert self.shift is not None and self.scale is not None
        params = {
            "form": self.form,
            "rule": self.rule.to_json(),
            "ridge_lambda": self.ridge_lambda,
            "action_ids": list(self.action_ids),
            "action_feature_names": list(self.action_feature_names),
            "action_map": self.action_map,
        }
        arrays = {"theta": self.theta, "a_inv": self.a_inv, "shift": self.shift}
        return params, {**arrays, "scale": self.scale}

    @classmethod
    def from_artifact(cls, params: dict[str, Any], arrays: dict[str, Array]) -> BanditPolicy:
        return cls(
            form=params["form"],
            rule=DecisionRule.from_json(params["rule"]),
            theta=arrays["theta"],
            a_inv=arrays["a_inv"],
            ridge_lambda=float(params["ridge_lambda"]),
            action_ids=tuple(params["action_ids"]),
            action_feature_names=tuple(params["action_feature_names"]),
            action_map=params["action_map"],
            shift=arrays["shift"],
            scale=arrays["scale"],
        )
