"""``rlops gate --version V``: gate a registered version and store the record.

The scenario battery runs on the version's artifact (loaded and verified from the
registry); the off-policy and KL checks read the app's recent examples from the decision
log. The record is stored whether it passes or not, so a failed gate is on file too.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer

from rlops.registry.commands import opened
from rlops.scale.engine import EngineConfig


@dataclass(frozen=True, slots=True)
class GateRequest:
    """What ``rlops gate`` was asked, for a registered version."""

    app: str
    name: str
    version: str
    thresholds: Path | None
    seeds: int
    root: Path
    index: str | None
    log: str
    since: float
    reward_spec: str | None
    estimator: str
    kl_bound: float
    baseline_floor: float
    baseline: str
    resamples: int
    by: str | None
    as_json: bool
    engine: EngineConfig = field(default_factory=EngineConfig)


def gate_version(request: GateRequest) -> int:
    """Gate, store, print; 0 when the version passed, 1 when it failed, 2 on bad input."""
    from rlops.apps.defaults import join_configs
    from rlops.core.errors import RlopsError, ValidationError
    from rlops.registry.gates import GateConfig, evaluate_gate
    from rlops.sim.baselines import named_policy
    from rlops.sim.battery import BatteryConfig
    from rlops.sim.gate import Thresholds
    from rlops.store import open_log

    r = request
    try:
        rules = Thresholds.load(r.thresholds) if r.thresholds else Thresholds.default(r.app)
        if rules.app != r.app:
            raise ValidationError(f"thresholds are for {rules.app!r}, not {r.app!r}", field="app")
        if r.seeds < 1 or not r.since > 0:
            raise ValidationError("--seeds and --since must be positive", field="seeds")
        config = GateConfig(
            estimator=r.estimator,  # type: ignore[arg-type]  # checked by GateConfig
            kl_bound=r.kl_bound,
            baseline_floor=r.baseline_floor,
            n_resamples=r.resamples,
        )
        baseline = named_policy(r.app, r.baseline)
        configs = join_configs()
        spec = r.reward_spec or (configs[r.app].reward.hash if r.app in configs else None)
        with open_log(r.log) as log:
            examples = log.examples(app=r.app, reward_spec=spec, start=time.time() - r.since)
        if not examples:
            raise ValidationError(
                f"no {r.app} examples in {r.log} from the last {r.since:g} s", field="log"
            )
    except RlopsError as error:
        typer.secho(f"error ({error.code}): {error.message}", err=True, fg=typer.colors.RED)
        return 2
    with opened(r.root, r.index) as registry:
        try:
            record = evaluate_gate(
                registry,
                r.name,
                r.version,
                examples=examples,
                thresholds=rules,
                baseline=baseline,
                baseline_name=r.baseline,
                battery_config=BatteryConfig(seeds=tuple(range(r.seeds))),
                config=config,
                actor=r.by,
                engine=r.engine,
            )
        except RlopsError as error:
            typer.secho(f"error ({error.code}): {error.message}", err=True, fg=typer.colors.RED)
            return 2
    if r.as_json:
        typer.echo(json.dumps(record.to_json(), indent=2, sort_keys=True))
    else:
        o, k = record.off_policy, record.kl
        typer.echo("\n".join(record.battery.checks))
        typer.echo(
            f"off-policy ({o.estimator}, n={o.n}): lower bound {o.low:.4g} vs "
            f"{o.reference_policy} {o.reference:.4g} -> {'ok' if o.passed else 'FAIL'}"
        )
        typer.echo(
            f"KL to {k.baseline}: mean {k.mean_kl:.4g} nats, bound {k.bound:g} -> "
            f"{'ok' if k.passed else 'FAIL'}"
        )
        verdict = "PASSED" if record.passed else "FAILED"
        typer.echo(f"gate {verdict} for {r.name} {r.version}; record stored")
    return 0 if record.passed else 1
