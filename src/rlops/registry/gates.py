"""Computing a gate record: battery, off-policy bound and KL, each a small pure function.

:func:`evaluate_gate` loads the candidate and the version in production from the
registry (both verified), runs the three checks and stores the record. The off-policy
check is one-sided on purpose: the candidate's *lower* bound must reach the incumbent's
*point* estimate, by the same estimator with the same bootstrap seed on the same logged
examples, so a candidate has to be better with confidence, not merely not worse.
Estimators: ``snips`` (default: bounded by the reward range, needs no reward model),
``ips``, ``dr`` and ``sndr`` (with a cross-fitted ridge reward model shared by both
policies). Without a production version the reference is the logging policy, whose value
is what the logs already earned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.core.errors import ValidationError
from rlops.core.records import Example
from rlops.exploration.explorer import with_floor
from rlops.policies.artifact import LoadedPolicy
from rlops.policies.contract import Policy, kl_divergence
from rlops.policies.stack import renormalised
from rlops.registry.gate_record import BatteryCheck, GateRecord, KlCheck, OffPolicyCheck
from rlops.registry.records import PRODUCTION
from rlops.registry.registry import Registry, default_actor
from rlops.scale.engine import EngineConfig
from rlops.sim.battery import BatteryConfig
from rlops.sim.gate import GateResult, Thresholds, run_gate

EstimatorName = Literal["snips", "ips", "dr", "sndr"]
ESTIMATORS: tuple[str, ...] = ("snips", "ips", "dr", "sndr")


@dataclass(frozen=True, slots=True)
class GateConfig:
    """How strict the off-policy and KL checks are.

    ``kl_bound`` is nats per context (mean over the logged contexts); ``baseline_floor``
    lifts every action of the baseline to at least that probability before the KL is
    taken, as the serving stack does, since a rule engine is deterministic and the KL to
    a one-hot is infinite wherever the candidate disagrees.
    """

    estimator: EstimatorName = "snips"
    level: float = 0.95
    n_resamples: int = 1000
    seed: int = 0
    kl_bound: float = 0.5
    baseline_floor: float = 0.05
    reward_model_folds: int = 3

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValidationError(f"estimator must be one of {ESTIMATORS}", field="estimator")
        if not 0.0 < self.level < 1.0:
            raise ValidationError("level must lie in (0, 1)", field="level")
        if not (math.isfinite(self.kl_bound) and self.kl_bound >= 0.0):
            raise ValidationError("kl_bound must be a finite number >= 0", field="kl_bound")
        if not 0.0 <= self.baseline_floor <= 1.0:
            raise ValidationError("baseline_floor must lie in [0, 1]", field="baseline_floor")
        if self.n_resamples < 2 or self.reward_model_folds < 2:
            raise ValidationError("n_resamples and folds must be at least 2", field="n_resamples")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValidationError(f"unknown gate settings {sorted(unknown)}", field="gate")
        return cls(**data)


def battery_check(
    policy: Policy,
    thresholds: Thresholds,
    config: BatteryConfig | None = None,
    *,
    engine: str | EngineConfig = "local",
) -> BatteryCheck:
    """The scenario battery against ``thresholds`` (failures listed first)."""
    result = run_gate(policy, thresholds, config=config, engine=engine)
    return battery_record(result, thresholds.app)


def battery_record(result: GateResult, app: str) -> BatteryCheck:
    """The stored form of a battery verdict: every check's one-line description."""
    lines = sorted((c.describe() for c in result.checks), key=lambda s: not s.startswith("FAIL"))
    return BatteryCheck(
        app=app,
        passed=result.passed,
        seeds=result.candidate.seeds,
        checks=tuple(lines),
    )


def _distribution(
    policy: Policy, context: npt.NDArray[np.float32], catalog: ActionCatalog, allowed: Any
) -> npt.NDArray[np.float64]:
    """The policy's probabilities restricted to each logged decision's allowed actions."""
    return renormalised(policy.probabilities(context, catalog), allowed)


def off_policy_check(
    candidate: LoadedPolicy,
    incumbent: LoadedPolicy | None,
    examples: Sequence[Example],
    config: GateConfig | None = None,
) -> OffPolicyCheck:
    """The candidate's lower bound beside the incumbent's (or logging policy's) estimate."""
    from rlops.ope import IPS, SNDR, SNIPS, Bootstrap, DoublyRobust, Estimator, estimate
    from rlops.ope.data import LoggedBandit, logging_policy

    config = config or GateConfig()
    schema = candidate.manifest.feature_schema
    catalog = candidate.manifest.action_catalog
    if incumbent is not None and incumbent.manifest.feature_schema.version != schema.version:
        raise ValidationError(
            f"{candidate.version} and production {incumbent.version} read different feature "
            "schemas: they cannot be compared on the same logs",
            field="feature_schema",
        )
    logged = LoggedBandit.from_examples(examples, schema=schema, action_ids=catalog.ids)
    target = _distribution(candidate.policy, logged.context, catalog, logged.allowed)
    if incumbent is not None:
        reference = _distribution(incumbent.policy, logged.context, catalog, logged.allowed)
    else:
        reference = logging_policy(logged)
    q_hat = None
    estimator: Estimator
    if config.estimator in ("dr", "sndr"):
        from rlops.ope.reward_models import RewardModel

        model = RewardModel(kind="ridge", n_folds=config.reward_model_folds, seed=config.seed)
        q_hat = model.fit_predict(
            context=logged.context,
            action=logged.action,
            reward=logged.reward,
            n_actions=len(catalog),
        )
        estimator = DoublyRobust() if config.estimator == "dr" else SNDR()
    else:
        estimator = SNIPS() if config.estimator == "snips" else IPS()
    interval = Bootstrap(level=config.level, n_resamples=config.n_resamples, seed=config.seed)
    mine = estimate(estimator, logged.inputs(target, q_hat), interval_config=interval)
    theirs = estimate(estimator, logged.inputs(reference, q_hat), interval_config=interval)
    return OffPolicyCheck(
        estimator=mine.estimator,
        value=mine.value,
        low=mine.low,
        high=mine.high,
        level=mine.level,
        reference=theirs.value,
        reference_policy=incumbent.version if incumbent is not None else "logging",
        n=mine.n,
        ess=mine.ess,
    )


def kl_check(
    candidate: Policy,
    baseline: Policy,
    context: npt.NDArray[np.float32],
    catalog: ActionCatalog,
    *,
    bound: float,
    floor: float,
    baseline_name: str = "baseline",
) -> KlCheck:
    """Mean and max of ``KL(candidate || floored baseline)`` over ``context (n, d)``."""
    if len(context) == 0:
        raise ValidationError("the KL check needs at least one context", field="examples")
    allowed = np.ones((len(context), len(catalog)), dtype=bool)
    p = candidate.probabilities(context, catalog)
    q = with_floor(renormalised(baseline.probabilities(context, catalog), allowed), allowed, floor)
    kl = kl_divergence(p, q)
    return KlCheck(
        mean_kl=float(np.mean(kl)),
        max_kl=float(np.max(kl)),
        bound=bound,
        floor=floor,
        baseline=baseline_name,
        n=len(context),
    )


def _check_app_schema(candidate: LoadedPolicy, app: str) -> None:
    """The battery feeds the app's own feature vectors: the candidate must read them."""
    from rlops.sim.advisor_core import ADVISOR_SCHEMA
    from rlops.sim.pricing_core import PRICING_SCHEMA

    expected = {"pricing": PRICING_SCHEMA, "advisor": ADVISOR_SCHEMA}.get(app)
    if expected is None:
        raise ValidationError(f"no scenario battery for app {app!r}", field="app")
    if candidate.manifest.feature_schema.version != expected.version:
        raise ValidationError(
            f"{candidate.version} reads a feature schema other than the {app} simulator's",
            field="feature_schema",
        )


def evaluate_gate(
    registry: Registry,
    name: str,
    version: str,
    *,
    examples: Sequence[Example],
    thresholds: Thresholds,
    baseline: Policy,
    baseline_name: str = "baseline",
    battery_config: BatteryConfig | None = None,
    config: GateConfig | None = None,
    actor: str | None = None,
    production_alias: str = PRODUCTION,
    engine: str | EngineConfig = "local",
) -> GateRecord:
    """Run the three checks on ``name``/``version`` and store the record in ``registry``.

    ``engine`` says where the scenario battery runs (``ray``: over Ray actors).
    """
    from rlops.ope.data import LoggedBandit

    config = config or GateConfig()
    candidate = registry.load(name, version)
    _check_app_schema(candidate, thresholds.app)
    production = registry.alias(name, production_alias)
    incumbent = registry.load(name, production.version) if production is not None else None
    schema = candidate.manifest.feature_schema
    catalog = candidate.manifest.action_catalog
    off_policy = off_policy_check(candidate, incumbent, examples, config)
    logged = LoggedBandit.from_examples(examples, schema=schema, action_ids=catalog.ids)
    kl = kl_check(
        candidate.policy,
        baseline,
        logged.context,
        catalog,
        bound=config.kl_bound,
        floor=config.baseline_floor,
        baseline_name=baseline_name,
    )
    battery = battery_check(candidate.policy, thresholds, battery_config, engine=engine)
    record = GateRecord(
        name=name,
        version=version,
        against_version=production.version if production is not None else None,
        battery=battery,
        off_policy=off_policy,
        kl=kl,
        created_at=registry.clock.now(),
        created_by=actor or default_actor(),
    )
    registry.record_gate(record)
    return record
