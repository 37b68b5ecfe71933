"""The records' wire types, with every check a record's constructor makes, in msgspec.

Validating a decision field by field in Python cost more than the rest of its trip
through the join. msgspec checks types and constraints in C while it decodes, so the
rules of :class:`~rlops.core.records.Decision` and :class:`~rlops.core.records.Outcome`
(id pattern, non-empty labels of at most 256 characters, finite numbers, 64-bit
integers, a propensity in (0, 1], non-empty signals) are restated here as constraints,
and the checks that are cheaper in Python (no NUL in labels and text features, unique
action ids, the chosen action among them) run after. Records are then built with
``trusted``. A property test holds these rules to the constructors': the same bytes are
accepted by both or by neither, and give equal records (``tests/stream/test_wire.py``).
"""

from __future__ import annotations

import sys
from typing import Annotated

import msgspec

from rlops.core.actions import ID_PATTERN
from rlops.core.errors import ValidationError
from rlops.core.records import Decision, Outcome

Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN.pattern)]
# NUL characters are looked for in Python below: a pattern per string cost 3 us a record.
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Name = Annotated[str, msgspec.Meta(min_length=1)]
Finite = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Propensity = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
Signals = Annotated[dict[Name, Finite], msgspec.Meta(min_length=1)]


class DecisionWire(msgspec.Struct, array_like=True, frozen=True):
    event_id: Id
    ts: Finite
    app: Id
    unit_id: Label
    arm: Label
    policy_version: Label
    features: dict[Name, bool | Int64 | Finite | str]
    action_ids: Annotated[tuple[str, ...], msgspec.Meta(min_length=1)]
    action_id: str
    propensity: Propensity
    explored: bool


class OutcomeWire(msgspec.Struct, array_like=True, frozen=True):
    outcome_id: Id
    event_id: Id
    ts: Finite
    signals: Signals


def decision_of(w: DecisionWire) -> Decision:
    for name in ("unit_id", "arm", "policy_version"):
        if "\x00" in getattr(w, name):
            raise ValidationError(
                f"{name} must be a non-empty string of at most 256 characters", field=name
            )
    for key, value in w.features.items():
        if isinstance(value, str) and "\x00" in value:
            raise ValidationError(
                f"features.{key} contains a NUL character", field=f"features.{key}"
            )
    ids = w.action_ids
    if len(set(ids)) != len(ids):
        raise ValidationError("action_ids must be non-empty and unique", field="action_ids")
    if w.action_id not in ids:
        raise ValidationError(
            f"action_id {w.action_id!r} is not among the allowed action_ids", field="action_id"
        )
    return Decision.trusted(
        w.event_id, float(w.ts), w.app, w.unit_id, w.arm, w.policy_version, w.features,
        ids, w.action_id, float(w.propensity), w.explored,
    )  # fmt: skip


def outcome_of(w: OutcomeWire) -> Outcome:
    return Outcome.trusted(w.outcome_id, w.event_id, float(w.ts), w.signals)
