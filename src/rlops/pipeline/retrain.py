"""One retraining cycle: snapshot, train, register, gate.

The newest ``holdout_fraction`` of the examples (by decision time) is never trained on:
it is what the off-policy check scores the candidate on, so the gate does not grade a
policy on the data that shaped it. Training data is frozen as a Parquet snapshot first
and the learner reads the snapshot, so the artifact's ``snapshot_id`` names exactly the
rows it learned from. Fine-tuning starts from the production policy when that policy is
of the learner's own family (a rule engine cannot be warm-started) and trains on every
new example plus old ones drawn to make ``old_fraction`` of the set.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlops.apps.defaults import join_configs
from rlops.apps.spaces import app_rules, app_spaces
from rlops.core.errors import ValidationError
from rlops.core.records import Example
from rlops.learn.data import LoggedData
from rlops.learn.train import save_trained, train_offline
from rlops.pipeline.loop_config import LoopConfig
from rlops.registry.gate_record import GateRecord
from rlops.registry.gates import evaluate_gate
from rlops.registry.records import PRODUCTION
from rlops.registry.registry import Registry
from rlops.sim.gate import Thresholds
from rlops.store.log import DecisionLog
from rlops.store.snapshot import write_snapshot

# The policy family each learner exports, so fine-tuning knows what it can start from.
WARM_START_FAMILY = {"cql": "mlp", "bandit": "bandit"}
MIN_TRAINING_EXAMPLES = 50


@dataclass(frozen=True, slots=True)
class Candidate:
    """A trained, registered and gated version, and what it was made from."""

    version: str
    snapshot_id: str
    rows: int
    holdout_rows: int
    parent: str | None
    trained_through: float
    gate: GateRecord

    def summary(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "rows": self.rows,
            "holdout_rows": self.holdout_rows,
            "parent": self.parent,
            "gate_passed": self.gate.passed,
            "failures": self.gate.failures(),
        }


def split_holdout(
    examples: Sequence[Example], fraction: float
) -> tuple[list[Example], list[Example]]:
    """Older examples to train on, the newest ``fraction`` (by decision time) held out."""
    ordered = sorted(examples, key=lambda e: (e.ts, e.event_id))
    cut = len(ordered) - max(1, round(len(ordered) * fraction))
    return ordered[:cut], ordered[cut:]


def fine_tune_mix(
    examples: Sequence[Example],
    trained_through: float | None,
    old_fraction: float,
    seed: int,
) -> list[Example]:
    """Every example joined after ``trained_through`` plus a seeded draw of older ones."""
    if trained_through is None:
        return list(examples)
    new = [e for e in examples if e.joined_at > trained_through]
    old = [e for e in examples if e.joined_at <= trained_through]
    if not new:
        raise ValidationError("fine-tuning needs examples joined since the last run", field="new")
    wanted = min(len(old), round(len(new) * old_fraction / (1.0 - old_fraction)))
    rows = np.random.default_rng(seed).choice(len(old), size=wanted, replace=False)
    return sorted([*(old[i] for i in rows), *new], key=lambda e: (e.ts, e.event_id))


def retrain(
    config: LoopConfig,
    log: DecisionLog,
    registry: Registry,
    *,
    snapshots: Path,
    now: float,
    trained_through: float | None,
) -> Candidate:
    """Snapshot, train, register and gate one candidate against production."""
    spec = join_configs()[config.app].reward.hash
    start = None if config.history_seconds is None else now - config.history_seconds
    examples = log.examples(app=config.app, reward_spec=spec, start=start)
    if len(examples) < MIN_TRAINING_EXAMPLES:
        raise ValidationError(
            f"{len(examples)} {config.app} examples; retraining needs {MIN_TRAINING_EXAMPLES}",
            field="examples",
        )
    newest = max(e.joined_at for e in examples)
    training, holdout = split_holdout(examples, config.holdout_fraction)
    schema, catalog = app_spaces(config.app)
    parent = _warm_start(config, registry)
    if parent is not None:
        training = fine_tune_mix(training, trained_through, config.old_fraction, config.seed)
    snapshot = write_snapshot(training, snapshots)
    data = LoggedData.from_snapshot(snapshot.path, schema, catalog, reward_spec=spec)
    trained = train_offline(
        config.learner,
        data,
        dict(config.learner_config),
        seed=config.seed,
        parent=None if parent is None else registry.load(config.policy_name, parent),
    )
    with tempfile.TemporaryDirectory(prefix=".loop-", dir=registry.root) as scratch:
        directory = Path(scratch) / "artifact"
        save_trained(
            directory,
            trained,
            app=config.app,
            name=config.policy_name,
            created_at=now,
            created_by="rlops loop",
        )
        version = registry.register(directory, actor="rlops loop").version
    thresholds = (
        Thresholds.load(config.thresholds) if config.thresholds else Thresholds.default(config.app)
    )
    gate = evaluate_gate(
        registry,
        config.policy_name,
        version,
        examples=holdout,
        thresholds=thresholds,
        baseline=app_rules(config.app),
        baseline_name="rules",
        battery_config=config.battery,
        config=config.gate,
        actor="rlops loop",
        engine=config.engine,
    )
    return Candidate(
        version=version,
        snapshot_id=snapshot.content_id,
        rows=len(training),
        holdout_rows=len(holdout),
        parent=parent,
        trained_through=newest,
        gate=gate,
    )


def _warm_start(config: LoopConfig, registry: Registry) -> str | None:
    """The production version to fine-tune from, or None to train from scratch."""
    if config.mode != "finetune":
        return None
    production = registry.alias(config.policy_name, PRODUCTION)
    if production is None:
        return None
    family = registry.manifest(config.policy_name, production.version).family
    return production.version if WARM_START_FAMILY.get(config.learner) == family else None
