"""Choosing an offline learner's settings by their off-policy value on held-out logs.

The logged data is split by unit (a product, a user): a seeded fraction of units is held
out whole, so CQL's trajectories stay intact and no unit is both learnt from and scored
on. Each candidate config is trained on the training units with the same seed (the
comparison is between configs, not seeds) and scored on the held-out units by an
off-policy estimator of its value (SNIPS by default; DR with a cross-fitted ridge reward
model fitted once on the held-out logs). The best score wins; ties go to the earlier
candidate.

On the ``local`` engine the candidates run one after another; on ``ray`` each is a Ray
Tune trial (one CPU each, as many at once as the cluster has). The candidates are drawn
before either runs (:mod:`rlops.scale.space`) and each trial is a pure function of its
config, the split and the seed, so both engines pick the same config.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rlops.core.errors import RlopsError, ValidationError
from rlops.learn.data import LoggedData
from rlops.scale.engine import EngineConfig, engine_config, ensure_ray
from rlops.scale.space import Candidate, SearchSpace

TUNABLE: tuple[str, ...] = ("bandit", "cql")
TuneEstimator = Literal["snips", "dr"]
TUNE_ESTIMATORS: tuple[str, ...] = ("snips", "dr")


@dataclass(frozen=True, slots=True)
class Trial:
    """One candidate's held-out value with its bootstrap interval."""

    index: int
    config: Candidate
    value: float
    low: float
    high: float

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "config": self.config,
            "value": self.value,
            "low": self.low,
            "high": self.high,
        }


@dataclass(frozen=True, slots=True)
class TuneResult:
    """Every trial in candidate order, and which one won."""

    learner: str
    estimator: str
    engine: str
    trials: tuple[Trial, ...]
    best_index: int
    n_train: int
    n_held_out: int
    seed: int

    @property
    def best(self) -> Trial:
        return self.trials[self.best_index]

    @property
    def best_config(self) -> Candidate:
        return dict(self.best.config)

    def table(self) -> str:
        lines = [
            f"{self.learner} tuning on {self.engine}: {len(self.trials)} candidates, "
            f"{self.estimator} on {self.n_held_out} held-out rows ({self.n_train} to train)"
        ]
        for t in self.trials:
            mark = "*" if t.index == self.best_index else " "
            lines.append(
                f"{mark} {t.index:3d}  {t.value:.5f} [{t.low:.5f}, {t.high:.5f}]  {t.config}"
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "learner": self.learner,
            "estimator": self.estimator,
            "engine": self.engine,
            "best_index": self.best_index,
            "best_config": self.best_config,
            "n_train": self.n_train,
            "n_held_out": self.n_held_out,
            "seed": self.seed,
            "trials": [t.to_json() for t in self.trials],
        }


def split_units(data: LoggedData, *, holdout: float, seed: int) -> tuple[LoggedData, LoggedData]:
    """``(train, held_out)``: a seeded ``holdout`` share of the units, held out whole."""
    if not 0.0 < holdout < 1.0:
        raise ValidationError("holdout must lie in (0, 1)", field="holdout")
    units = np.unique(data.unit_ids)
    if len(units) < 2:
        raise ValidationError("splitting by unit needs at least two units", field="data")
    n_held = min(len(units) - 1, max(1, round(holdout * len(units))))
    held_units = np.random.default_rng(seed).permutation(units)[:n_held]
    held = np.isin(data.unit_ids, held_units)
    return data.subset(np.flatnonzero(~held)), data.subset(np.flatnonzero(held))


def _learner_config(learner: str, candidate: Candidate, seed: int) -> None:
    """Build the learner's config from ``candidate``: a bad value fails here, before training."""
    try:
        if learner == "bandit":
            from rlops.learn.bandits import BanditConfig

            BanditConfig.from_json(dict(candidate))
        else:
            from rlops.learn.cql import CQLConfig

            CQLConfig.from_json({**candidate, "seed": seed})
    except RlopsError as error:
        raise ValidationError(
            f"candidate {candidate} is not a valid {learner} config: {error.message}",
            field=f"space.{error.field}" if error.field else "space",
        ) from None
    except (TypeError, ValueError) as error:
        raise ValidationError(
            f"candidate {candidate} is not a valid {learner} config: {error}", field="space"
        ) from None


def run_trial(
    learner: str,
    candidate: Candidate,
    train: LoggedData,
    held: LoggedData,
    *,
    estimator: str,
    q_hat: npt.NDArray[np.float64] | None,
    seed: int,
) -> tuple[float, float, float]:
    """Train ``candidate`` on ``train``; its ``(value, low, high)`` on ``held``."""
    from rlops.learn.train import train_offline
    from rlops.ope import SNIPS, Bootstrap, DoublyRobust, Estimator, estimate
    from rlops.ope.estimate import BanditInputs
    from rlops.policies.stack import renormalised

    trained = train_offline(learner, train, dict(candidate), seed=seed)
    probs = trained.policy.probabilities(held.features, held.catalog)
    inputs = BanditInputs.of(
        reward=held.rewards,
        pscore=held.propensities,
        action=held.actions,
        action_dist=renormalised(np.asarray(probs, dtype=np.float64), held.allowed),
        q_hat=q_hat,
    )
    chosen: Estimator = SNIPS() if estimator == "snips" else DoublyRobust()
    result = estimate(chosen, inputs, interval_config=Bootstrap(n_resamples=200, seed=seed))
    return result.value, result.low, result.high


def tune_offline(
    learner: str,
    data: LoggedData,
    space: SearchSpace | Mapping[str, Any],
    *,
    engine: str | EngineConfig = "local",
    num_samples: int | None = None,
    seed: int = 0,
    estimator: TuneEstimator = "snips",
    holdout: float = 0.3,
    fixed: Mapping[str, Any] | None = None,
) -> TuneResult:
    """Train every candidate of ``space`` and pick the best by held-out off-policy value.

    ``num_samples`` None runs the grid of ``space``'s choices; otherwise that many seeded
    draws. ``fixed`` settings hold for every candidate (the space's win where both name
    one). Every candidate is validated before anything trains.
    """
    chosen_engine = engine_config(engine)
    if learner not in TUNABLE:
        raise ValidationError(f"can tune {TUNABLE}, not {learner!r}", field="learner")
    if estimator not in TUNE_ESTIMATORS:
        raise ValidationError(f"estimator must be one of {TUNE_ESTIMATORS}", field="estimator")
    searched = space if isinstance(space, SearchSpace) else SearchSpace.from_json(space)
    if "seed" in searched.names:
        raise ValidationError("the seed is tune_offline's, not the space's", field="space.seed")
    candidates = searched.candidates(num_samples, seed=seed)
    fixed = dict(fixed or {})
    for candidate in candidates:
        _learner_config(learner, {**fixed, **candidate}, seed)
    train, held = split_units(data, holdout=holdout, seed=seed)
    q_hat = None
    if estimator == "dr":
        from rlops.ope.reward_models import RewardModel

        q_hat = RewardModel(kind="ridge", n_folds=3, seed=seed).fit_predict(
            context=held.features,
            action=held.actions,
            reward=held.rewards,
            n_actions=len(held.catalog),
        )
    work = _Work(learner, fixed, train, held, estimator, q_hat, seed)
    if chosen_engine.kind == "local":
        scores = [work.score(c) for c in candidates]
    else:
        scores = _on_ray_tune(work, candidates, chosen_engine)
    trials = tuple(
        Trial(i, c, *score) for i, (c, score) in enumerate(zip(candidates, scores, strict=True))
    )
    best = max(range(len(trials)), key=lambda i: (trials[i].value, -i))
    return TuneResult(
        learner=learner,
        estimator=estimator,
        engine=chosen_engine.kind,
        trials=trials,
        best_index=best,
        n_train=len(train),
        n_held_out=len(held),
        seed=seed,
    )


@dataclass(frozen=True, eq=False)
class _Work:
    """What every trial shares: sent once to Ray's object store, not once per trial."""

    learner: str
    fixed: Candidate
    train: LoggedData
    held: LoggedData
    estimator: str
    q_hat: npt.NDArray[np.float64] | None
    seed: int

    def score(self, candidate: Candidate) -> tuple[float, float, float]:
        return run_trial(
            self.learner,
            {**self.fixed, **candidate},
            self.train,
            self.held,
            estimator=self.estimator,
            q_hat=self.q_hat,
            seed=self.seed,
        )


def _trainable(params: dict[str, Any], work: _Work, candidates: list[Candidate]) -> None:
    from ray import tune

    value, low, high = work.score(candidates[int(params["index"])])
    tune.report({"value": value, "low": low, "high": high})


def _on_ray_tune(
    work: _Work, candidates: list[Candidate], engine: EngineConfig
) -> list[tuple[float, float, float]]:
    """One Tune trial per candidate, indexed by a grid over candidate positions."""
    ensure_ray(engine)
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(_trainable, work=work, candidates=candidates), {"cpu": 1}
    )
    with tempfile.TemporaryDirectory(prefix="rlops-tune-") as storage:
        tuner = tune.Tuner(
            trainable,
            param_space={"index": tune.grid_search(list(range(len(candidates))))},
            tune_config=tune.TuneConfig(num_samples=1, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=storage, name="rlops-tune", verbose=0),
        )
        results = tuner.fit()
    scores: dict[int, tuple[float, float, float]] = {}
    for position in range(len(results)):
        result = results[position]
        if result.error is not None:
            raise RlopsError(f"a tuning trial failed: {result.error}", field="space")
        index = int((result.config or {})["index"])
        metrics = result.metrics or {}
        scores[index] = (float(metrics["value"]), float(metrics["low"]), float(metrics["high"]))
    if len(scores) != len(candidates):
        raise RlopsError(
            f"{len(candidates) - len(scores)} tuning trials reported nothing", field="space"
        )
    return [scores[i] for i in range(len(candidates))]
