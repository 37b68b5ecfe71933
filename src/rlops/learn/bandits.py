"""Contextual bandit learners: a ridge model updated event by event, served as a snapshot.

One learner covers the issue's four rules (epsilon-greedy over a ridge model, LinUCB,
linear Thompson sampling, SquareCB): they share the model and differ only in how its
estimates become probabilities (:mod:`rlops.policies.bandit_rules`), so the rule is a
setting of :class:`BanditConfig` and the state is one :class:`BanditLearner`:

- ``update(features, actions, rewards)`` folds events in with Sherman–Morrison rank-one
  updates and an optional forgetting factor (:mod:`rlops.learn.ridge`), never a refit;
- ``add_action(action)`` starts a new action cold: a disjoint model gives it the ridge
  prior (LinUCB is optimistic about it), a shared model scores it by its features at once;
- ``policy()`` freezes the state into a :class:`~rlops.policies.bandit.BanditPolicy`
  for serving (numpy only, saved as an artifact like any policy).

Input is checked in full before any state changes: a bad batch raises
:class:`~rlops.core.errors.ValidationError` naming the field, and the learner is as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from rlops.core.actions import Action, ActionCatalog
from rlops.core.errors import ValidationError
from rlops.learn.data import LoggedData
from rlops.learn.ridge import check_state, disjoint_update, sequential_update
from rlops.policies.bandit import FORMS, BanditPolicy, Form, augment, joint_features
from rlops.policies.bandit_rules import DecisionRule, Rule
from rlops.policies.linear import ActionMap, _standardizer, action_basis, action_basis_width

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BanditConfig:
    """A bandit learner's settings; ``kind`` tags it in a training config's JSON.

    ``rule`` and its settings (``alpha`` for LinUCB, ``epsilon``, ``squarecb_gamma``,
    ``thompson_scale`` ``v`` and ``thompson_samples`` ``M``) are as in
    :class:`~rlops.policies.bandit_rules.DecisionRule`. ``form``: ``disjoint`` (a model
    per action) or ``shared`` (one model over context-action features, through
    ``action_map``). ``ridge_lambda`` is the prior precision, ``gamma_forget`` the
    forgetting factor (1 keeps everything). ``importance_weighting`` weights each logged
    event by ``min(1 / propensity, max_importance_weight)`` when fitting from logs, so the
    regression targets the reward under every action's own context distribution rather
    than the logging policy's (a bias correction paid for in variance).
    ``standardize``: fit ``shift``/``scale`` to the training features.
    """

    kind: ClassVar[str] = "bandit"
    rule: Rule = "linucb"
    form: Form = "disjoint"
    alpha: float = 1.0
    epsilon: float = 0.1
    squarecb_gamma: float = 50.0
    thompson_scale: float = 1.0
    thompson_samples: int = 200
    gamma_forget: float = 1.0
    ridge_lambda: float = 1.0
    action_map: ActionMap = "identity"
    importance_weighting: bool = False
    max_importance_weight: float = 100.0
    standardize: bool = True

    def __post_init__(self) -> None:
        self.decision_rule(0)  # validates the rule's settings, naming the field
        if self.form not in FORMS:
            raise ValidationError(f"unknown form {self.form!r}; known {list(FORMS)}", field="form")
        if not (np.isfinite(self.gamma_forget) and 0.0 < self.gamma_forget <= 1.0):
            raise ValidationError(
                f"gamma_forget must lie in (0, 1], got {self.gamma_forget!r}", field="gamma_forget"
            )
        if not (np.isfinite(self.ridge_lambda) and self.ridge_lambda > 0.0):
            raise ValidationError(
                f"ridge_lambda must be positive, got {self.ridge_lambda!r}", field="ridge_lambda"
            )
        if self.action_map not in ("identity", "quadratic"):
            raise ValidationError(f"unknown action map {self.action_map!r}", field="action_map")
        if not (np.isfinite(self.max_importance_weight) and self.max_importance_weight >= 1.0):
            raise ValidationError(
                "max_importance_weight must be at least 1", field="max_importance_weight"
            )

    def decision_rule(self, seed: int) -> DecisionRule:
        return DecisionRule(
            kind=self.rule,
            alpha=self.alpha,
            epsilon=self.epsilon,
            squarecb_gamma=self.squarecb_gamma,
            thompson_scale=self.thompson_scale,
            thompson_samples=self.thompson_samples,
            seed=seed,
        )

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BanditConfig:
        fields = dict(data)
        if fields.pop("kind", cls.kind) != cls.kind:
            raise ValidationError(f"not a bandit config: kind {data.get('kind')!r}", field="kind")
        unknown = set(fields) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValidationError(f"unknown bandit settings {sorted(unknown)}", field="config")
        return cls(**fields)


def standardizer(features: npt.NDArray[np.floating[Any]]) -> tuple[Array, Array]:
    """``(shift, scale)``: column means and standard deviations (1 where a column is
    constant, so a feature that never varied is left as it is)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0 or not np.all(np.isfinite(x)):
        raise ValidationError("standardising needs finite (n >= 1, d) features", field="features")
    scale = x.std(axis=0)
    return x.mean(axis=0), np.where(scale > 1e-12, scale, 1.0)


class BanditLearner:
    """The ridge state of one bandit and the catalog it acts over.

    ``dim`` is the context width ``d``; ``shift``/``scale`` standardise contexts (see
    :func:`standardizer`). ``seed`` fixes the snapshot's Thompson draws. The disjoint
    state is ``a_inv (K, q, q)``, ``b (K, q)`` with ``q = d + 1``, one row per catalog
    action; the shared state is ``a_inv (p, p)``, ``b (p,)`` with ``p = q * (m' + 1)``.
    """

    def __init__(
        self,
        config: BanditConfig,
        catalog: ActionCatalog,
        dim: int,
        *,
        shift: Array | None = None,
        scale: Array | None = None,
        seed: int = 0,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValidationError(f"dim must be a positive integer, got {dim!r}", field="dim")
        self.config = config
        self.catalog = catalog
        self.dim = dim
        self.shift, self.scale = _standardizer(dim, shift, scale)
        self.rule = config.decision_rule(seed)
        self.events = 0
        q = dim + 1
        lam = config.ridge_lambda
        if config.form == "disjoint":
            self.a_inv: Array = np.tile(np.eye(q) / lam, (len(catalog), 1, 1))
            self.b: Array = np.zeros((len(catalog), q))
        else:
            if not catalog.feature_names:
                raise ValidationError(
                    "the shared form scores actions by their features; the catalog has none",
                    field="form",
                )
            p = q * action_basis_width(len(catalog.feature_names), config.action_map)
            self.a_inv = np.eye(p) / lam
            self.b = np.zeros(p)

    @property
    def theta(self) -> Array:
        """The ridge estimate ``A^{-1} b``: ``(K, q)`` disjoint, ``(p,)`` shared."""
        out: Array = np.einsum("...ij,...j->...i", self.a_inv, self.b)
        return out

    def _indices(self, actions: npt.ArrayLike | Sequence[str], n: int) -> npt.NDArray[np.intp]:
        raw = np.asarray(actions)
        if raw.shape != (n,):
            raise ValidationError(
                f"actions must have shape ({n},), got {raw.shape}", field="actions"
            )
        if raw.dtype.kind in "US":
            index = {a: i for i, a in enumerate(self.catalog.ids)}
            missing = sorted({str(a) for a in raw.tolist() if a not in index})
            if missing:
                raise ValidationError(
                    f"actions {missing} are not in the learner's catalog {list(self.catalog.ids)}",
                    field="actions",
                )
            return np.array([index[a] for a in raw.tolist()], dtype=np.intp)
        if raw.dtype.kind not in "iu" and not (n == 0 and raw.dtype.kind == "f"):
            raise ValidationError("actions must be catalog indices or action ids", field="actions")
        out = raw.astype(np.intp)
        if n and (out.min() < 0 or out.max() >= len(self.catalog)):
            raise ValidationError(
                f"an action index is outside the catalog of {len(self.catalog)}", field="actions"
            )
        return out

    def _checked(
        self,
        features: npt.ArrayLike,
        actions: npt.ArrayLike | Sequence[str],
        rewards: npt.ArrayLike,
        weights: npt.ArrayLike | None,
    ) -> tuple[Array, npt.NDArray[np.intp], Array, Array]:
        try:
            x = np.asarray(features, dtype=np.float64)
            r = np.asarray(rewards, dtype=np.float64).reshape(-1)
            w = np.ones(len(r)) if weights is None else np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"features, rewards and weights must be numbers: {exc}", field="features"
            ) from None
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValidationError(
                f"features must have shape (n, {self.dim}); got {np.shape(features)}",
                field="features",
            )
        if not np.all(np.isfinite(x)):
            raise ValidationError("features hold a non-finite value", field="features")
        n = len(x)
        if r.shape != (n,) or not np.all(np.isfinite(r)):
            raise ValidationError(f"rewards must be {n} finite numbers", field="rewards")
        w = w.reshape(-1)
        if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0.0):
            raise ValidationError(
                f"weights must be {n} finite non-negative numbers", field="weights"
            )
        return x, self._indices(actions, n), r, w

    def update(
        self,
        features: npt.ArrayLike,
        actions: npt.ArrayLike | Sequence[str],
        rewards: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
    ) -> None:
        """Fold in events in row order: ``features (n, d)``, ``actions (n,)`` catalog indices
        or action ids, ``rewards (n,)``, optional importance ``weights (n,)``.

        The whole batch is checked first and the new state is swapped in only when every
        event is folded in, so a failure leaves the learner unchanged.
        """
        x, acts, r, w = self._checked(features, actions, rewards, weights)
        z1 = augment((x - self.shift) / self.scale)
        gamma = self.config.gamma_forget
        if self.config.form == "disjoint":
            a_inv, b = disjoint_update(self.a_inv, self.b, z1, acts, r, w, gamma)
        else:
            phi = action_basis(self.catalog.feature_matrix(), self.config.action_map)
            xs = joint_features(z1, phi[acts])
            a_inv, b = sequential_update(self.a_inv, self.b, xs, r, w, gamma)
        check_state(a_inv, b)
        self.a_inv, self.b = a_inv, b
        self.events += len(r)

    def revise(
        self,
        features: npt.ArrayLike,
        actions: npt.ArrayLike | Sequence[str],
        old_rewards: npt.ArrayLike,
        new_rewards: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
    ) -> None:
        """Replace the rewards of events already folded in (a late outcome revised them).

        An event enters ``A`` through its features and weight only, and ``b`` as
        ``w r x``; a revision changes ``r`` alone, so replacing it is
        ``b <- b + w (r_new - r_old) x`` with ``A`` untouched: the very state that folding
        the revised reward in the first place would have given. Under forgetting the old
        reward has decayed by an amount the state does not record, so this needs
        ``gamma_forget == 1``. Checked in full first; a failure changes nothing.
        """
        if self.config.gamma_forget != 1.0:
            raise ValidationError(
                "replacing a folded reward needs gamma_forget == 1: with forgetting the "
                "old reward's decayed share is not recorded",
                field="gamma_forget",
            )
        x, acts, new, w = self._checked(features, actions, new_rewards, weights)
        old = np.asarray(old_rewards, dtype=np.float64).reshape(-1)
        if old.shape != new.shape or not np.all(np.isfinite(old)):
            raise ValidationError(f"old_rewards must be {len(new)} finite numbers", field="rewards")
        z1 = augment((x - self.shift) / self.scale)
        delta = w * (new - old)
        b = self.b.copy()
        if self.config.form == "disjoint":
            np.add.at(b, acts, delta[:, None] * z1)
        else:
            phi = action_basis(self.catalog.feature_matrix(), self.config.action_map)
            b += joint_features(z1, phi[acts]).T @ delta
        check_state(self.a_inv, b)
        self.b = b

    def learn(self, data: LoggedData) -> None:
        """Continue from logged data, events in time order; chosen actions are matched to
        this learner's catalog by id (an action it does not hold is an error)."""
        if data.schema.dim != self.dim:
            raise ValidationError(
                f"the data has {data.schema.dim} features; the learner reads {self.dim}",
                field="features",
            )
        order = np.argsort(data.ts, kind="stable")
        ids = np.asarray(data.catalog.ids)[data.actions[order]]
        weights = None
        if self.config.importance_weighting:
            weights = np.minimum(1.0 / data.propensities[order], self.config.max_importance_weight)
        self.update(data.features[order], ids, data.rewards[order], weights)

    @classmethod
    def fit(cls, data: LoggedData, config: BanditConfig, *, seed: int = 0) -> BanditLearner:
        """A learner over ``data.catalog`` trained on ``data`` from the prior."""
        shift, scale = (
            standardizer(data.features) if config.standardize and len(data) else (None, None)
        )
        learner = cls(config, data.catalog, data.schema.dim, shift=shift, scale=scale, seed=seed)
        learner.learn(data)
        return learner

    @classmethod
    def from_policy(
        cls, policy: BanditPolicy, config: BanditConfig, catalog: ActionCatalog, *, seed: int = 0
    ) -> BanditLearner:
        """Resume learning from a served snapshot (fine-tuning, online updates).

        A snapshot keeps ``A^{-1}`` and ``theta``; ``b = A theta`` recovers the rest, so
        continuing from it equals never having stopped (up to float round-off).
        Disjoint rows follow ``catalog``; an action the snapshot never saw starts at
        the prior, as :meth:`add_action` would give it.
        """
        if not isinstance(policy, BanditPolicy):
            raise ValidationError("a bandit can only resume from a bandit policy", field="parent")
        if policy.form != config.form or policy.action_map != config.action_map:
            raise ValidationError(
                f"the parent is a {policy.form}/{policy.action_map} bandit; the config asks "
                f"for {config.form}/{config.action_map}",
                field="form",
            )
        learner = cls(
            config, catalog, policy.dim, shift=policy.shift, scale=policy.scale, seed=seed
        )
        if config.form == "disjoint":
            rows = {a: i for i, a in enumerate(policy.action_ids)}
            for k, action in enumerate(catalog.ids):
                if action in rows:
                    learner.a_inv[k] = policy.a_inv[rows[action]]
                    learner.b[k] = np.linalg.solve(
                        policy.a_inv[rows[action]], policy.theta[rows[action]]
                    )
        else:
            learner.a_inv = policy.a_inv.copy()
            learner.b = np.asarray(np.linalg.solve(policy.a_inv, policy.theta), dtype=np.float64)
        return learner

    def add_action(self, action: Action) -> None:
        """Append ``action`` to the catalog (cold start).

        Disjoint: a new model at the ridge prior (zero mean, ``A^{-1} = I / lambda``,
        undecayed: the new action starts with the configured prior however long the
        others have been learning). Shared: nothing to add, the model scores the action
        by its features at once.
        """
        catalog = self.catalog.add(action)  # checks the id and the feature width
        if self.config.form == "disjoint":
            q = self.dim + 1
            prior = np.eye(q)[None] / self.config.ridge_lambda
            self.a_inv = np.concatenate([self.a_inv, prior])
            self.b = np.concatenate([self.b, np.zeros((1, q))])
        self.catalog = catalog

    def policy(self) -> BanditPolicy:
        """A frozen snapshot for serving: later updates do not change it."""
        shared = self.config.form == "shared"
        return BanditPolicy(
            form=self.config.form,
            rule=self.rule,
            theta=self.theta.copy(),
            a_inv=self.a_inv.copy(),
            ridge_lambda=self.config.ridge_lambda,
            action_ids=() if shared else self.catalog.ids,
            action_feature_names=self.catalog.feature_names if shared else (),
            action_map=self.config.action_map,
            shift=self.shift.copy(),
            scale=self.scale.copy(),
        )


def train_bandit(data: LoggedData, config: BanditConfig, *, seed: int) -> BanditPolicy:
    """The entry point ``rlops train`` calls: fit on logged data, return the snapshot."""
    return BanditLearner.fit(data, config, seed=seed).policy()
