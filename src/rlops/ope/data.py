"""Logged examples to the arrays estimators take, and the simple target policies.

:class:`LoggedBandit` holds one log as arrays: contexts built by name through a
:class:`~rlops.core.features.FeatureSchema`, the logged action's index in a fixed action
ordering, propensities, rewards, and a mask of the actions each decision allowed.
Examples can be read from JSON lines (``Example.to_json`` per line) or from a Parquet
file whose columns are the ``Example`` fields.

Target policies here need no artifact: the logging policy itself, uniform random over
the allowed actions, and "always action X". The log records only the propensity of the
chosen action, so :func:`logging_policy` spreads the remaining mass evenly over the other
allowed actions; IPS and SNIPS use only the logged action's probability and stay exact,
while DM/DR see that assumption through the reward model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rlops.core.errors import ValidationError
from rlops.core.features import Feature, FeatureSchema
from rlops.core.records import Example
from rlops.ope.estimate import BanditInputs, FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class LoggedBandit:
    """One log as arrays. Shapes: context (n, d); action, pscore, reward (n,);
    allowed (n, k) booleans in ``action_ids`` order."""

    context: npt.NDArray[np.float32]
    action: IntArray
    pscore: FloatArray
    reward: FloatArray
    allowed: npt.NDArray[np.bool_]
    action_ids: tuple[str, ...]
    schema: FeatureSchema

    @property
    def n(self) -> int:
        return int(self.reward.shape[0])

    @classmethod
    def from_examples(
        cls,
        examples: Sequence[Example],
        *,
        schema: FeatureSchema | None = None,
        action_ids: Sequence[str] | None = None,
    ) -> LoggedBandit:
        """Arrays from ``examples``; the schema and action ordering are inferred if absent
        (numbers become floats, strings categories; actions in first-seen order)."""
        if not examples:
            raise ValidationError("no examples to evaluate", field="examples")
        schema = schema if schema is not None else infer_schema(examples)
        if action_ids is None:
            seen: dict[str, None] = {}
            for example in examples:
                seen.update(dict.fromkeys(example.action_ids))
            action_ids = tuple(seen)
        ids = tuple(action_ids)
        position = {a: i for i, a in enumerate(ids)}
        n, k = len(examples), len(ids)
        allowed = np.zeros((n, k), dtype=bool)
        action = np.empty(n, dtype=np.int64)
        for i, example in enumerate(examples):
            try:
                allowed[i, [position[a] for a in example.action_ids]] = True
                action[i] = position[example.action_id]
            except KeyError as missing:
                raise ValidationError(
                    f"example {example.event_id} names action {missing} outside action_ids",
                    field="action_ids",
                ) from None
        return cls(
            context=schema.matrix([e.features for e in examples]),
            action=action,
            pscore=np.array([e.propensity for e in examples], dtype=np.float64),
            reward=np.array([e.reward for e in examples], dtype=np.float64),
            allowed=allowed,
            action_ids=ids,
            schema=schema,
        )

    def inputs(self, action_dist: FloatArray, q_hat: FloatArray | None = None) -> BanditInputs:
        """Checked estimator inputs for one target policy's (n, k) probabilities."""
        return BanditInputs.of(
            reward=self.reward,
            pscore=self.pscore,
            action=self.action,
            action_dist=action_dist,
            q_hat=q_hat,
        )


def infer_schema(examples: Sequence[Example]) -> FeatureSchema:
    """A schema covering every feature name in ``examples`` (sorted by name)."""
    kinds: dict[str, set[str]] = {}
    for example in examples:
        for name, value in example.features.items():
            kinds.setdefault(name, set()).add(
                "category"
                if isinstance(value, str)
                else ("bool" if isinstance(value, bool) else "float")
            )
    features = []
    for name in sorted(kinds):
        if "category" in kinds[name]:
            values = sorted({str(e.features[name]) for e in examples if name in e.features})
            features.append(
                Feature(name=name, kind="category", categories=tuple(values), default=values[0])
            )
        else:
            features.append(Feature(name=name, kind="float", default=0.0))
    if not features:
        features.append(Feature(name="bias", kind="float", default=1.0))
    return FeatureSchema.of(features)


def logging_policy(log: LoggedBandit) -> FloatArray:
    """The logging policy: the logged propensity on the logged action, the rest spread
    evenly over the other allowed actions."""
    n, k = log.allowed.shape
    others = log.allowed.sum(axis=1) - 1
    dist = np.zeros((n, k))
    spread = np.where(others > 0, (1.0 - log.pscore) / np.maximum(others, 1), 0.0)
    dist[log.allowed] = np.repeat(spread, log.allowed.sum(axis=1))
    dist[np.arange(n), log.action] = np.where(others > 0, log.pscore, 1.0)
    return dist


def uniform_policy(log: LoggedBandit) -> FloatArray:
    """Uniform random over each decision's allowed actions."""
    allowed = log.allowed.astype(np.float64)
    out: FloatArray = allowed / allowed.sum(axis=1, keepdims=True)
    return out


def always_policy(log: LoggedBandit, action_id: str) -> FloatArray:
    """Always ``action_id`` (where a decision did not allow it, uniform over what it did)."""
    if action_id not in log.action_ids:
        raise ValidationError(f"unknown action {action_id!r}", field="policy")
    column = log.action_ids.index(action_id)
    dist = uniform_policy(log)
    can = log.allowed[:, column]
    dist[can] = 0.0
    dist[can, column] = 1.0
    return dist


def read_examples(path: Path) -> list[Example]:
    """Examples from JSON lines (``.jsonl``/``.json``) or a Parquet snapshot."""
    if path.suffix == ".parquet":
        return _read_parquet(path)
    examples = []
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                examples.append(Example.from_json(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ValidationError(
                    f"{path}:{number}: not an example ({error})", field="log"
                ) from None
    return examples


def _read_parquet(path: Path) -> list[Example]:
    """A snapshot written by :func:`rlops.store.snapshot.write_snapshot`, verified on read."""
    from rlops.store.snapshot import read_snapshot

    return read_snapshot(path).examples()
