"""Row encoding shared by every SQL backend: records <-> tuples of plain values.

A decision's ``action_ids`` repeat across rows (one list per catalog version), so each
distinct ordered list is stored once, in ``action_sets``, and a decision row keeps only
its key: a 64-bit content hash of the list, which every process computes alike with no
round trip to the database. Two lists under one key are refused: within a process by
:func:`register_action_set`, against the database when a log first writes or reads one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from rlops.core.errors import IntegrityError
from rlops.core.records import Decision, Example, Outcome
from rlops.rewards.join import Scored

DECISION_COLUMNS = (
    "event_id",
    "ts",
    "app",
    "unit_id",
    "arm",
    "policy_version",
    "features",
    "action_set",
    "action_id",
    "propensity",
    "explored",
)
OUTCOME_COLUMNS = ("outcome_id", "event_id", "ts", "signals", "received_at")
EXAMPLE_COLUMNS = (
    "event_id",
    "reward_spec",
    "revision",
    "app",
    "ts",
    "joined_at",
    "reward",
    "late",
    "defaulted",
    "is_current",
    "body",
)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(value: Any) -> Any:
    """JSON columns come back as text (SQLite) or already parsed (PostgreSQL jsonb)."""
    if isinstance(value, str | bytes | bytearray | memoryview):
        return orjson.loads(bytes(value) if isinstance(value, memoryview) else value)
    return value


ACTION_SET_COLUMNS = ("id", "ids")
_SET_KEYS: dict[tuple[str, ...], int] = {}
_SET_IDS: dict[int, tuple[str, ...]] = {}
_MAX_SETS = 65536  # bounded, should every decision carry a list of its own


def action_set_key(ids: tuple[str, ...]) -> int:
    """The key of an ordered action-id list: a signed 64-bit hash of its JSON text."""
    key = _SET_KEYS.get(ids)
    if key is None:
        digest = hashlib.blake2b(orjson.dumps(ids), digest_size=8).digest()
        key = int.from_bytes(digest, "big", signed=True)
        register_action_set(key, ids)
    return key


def register_action_set(key: int, ids: tuple[str, ...]) -> None:
    """Remember ``key`` for ``ids``; raise if this process has seen it for another list."""
    seen = _SET_IDS.get(key)
    if seen is not None and seen != ids:
        raise IntegrityError(
            f"action sets {list(seen)} and {list(ids)} hash to one key {key}",
            field="action_ids",
        )
    if len(_SET_KEYS) >= _MAX_SETS:
        _SET_KEYS.clear()
        _SET_IDS.clear()
    _SET_KEYS[ids] = key
    _SET_IDS[key] = ids


def action_set_row(key: int, ids: tuple[str, ...]) -> tuple[int, str]:
    return (key, orjson.dumps(ids).decode())


def decision_rows(decisions: Iterable[Decision]) -> list[tuple[Any, ...]]:
    """Rows as :data:`DECISION_COLUMNS`: the append's hot loop, one comprehension."""
    dumps = orjson.dumps
    keys = _SET_KEYS
    return [
        (
            d.event_id,
            d.ts,
            d.app,
            d.unit_id,
            d.arm,
            d.policy_version,
            dumps(d.features).decode(),
            keys.get(d.action_ids) or action_set_key(d.action_ids),  # a 0 key recomputes
            d.action_id,
            d.propensity,
            1 if d.explored else 0,
        )
        for d in decisions
    ]


def decision_from_row(row: Sequence[Any], action_sets: Mapping[int, tuple[str, ...]]) -> Decision:
    """``row`` as :data:`DECISION_COLUMNS` (extra trailing columns are ignored).

    Rows of our own log were validated when appended (and the table's types hold them),
    so they are rebuilt without checking each field again: that re-validation was most
    of a join step's time.
    """
    return Decision.trusted(
        row[0],
        float(row[1]),
        row[2],
        row[3],
        row[4],
        row[5],
        loads(row[6]),
        action_sets[row[7]],
        row[8],
        float(row[9]),
        bool(row[10]),
    )


def outcome_row(o: Outcome, received_at: float) -> tuple[Any, ...]:
    return (o.outcome_id, o.event_id, o.ts, orjson.dumps(o.signals).decode(), received_at)


def outcome_from_row(row: tuple[Any, ...]) -> Outcome:
    """An outcome row of our own log, validated on append: rebuilt without re-checking."""
    return Outcome.trusted(row[0], row[1], float(row[2]), loads(row[3]))


def example_row(e: Example) -> tuple[Any, ...]:
    return (
        e.event_id,
        e.reward_spec,
        e.revision,
        e.app,
        e.ts,
        e.joined_at,
        e.reward,
        1 if e.late else 0,
        1 if e.defaulted else 0,
        1,
        dumps(e.to_json()),
    )


def joined_example_row(
    row: Sequence[Any],
    action_ids: tuple[str, ...],
    scored: Scored,
    *,
    reward_spec: str,
    joined_at: float,
) -> tuple[Any, ...]:
    """The first example row of a decision read back as ``row`` (:data:`DECISION_COLUMNS`).

    What ``example_row(join_decision(decision_from_row(row), ...))`` writes, byte for byte,
    without building either record: the features go into the body as the JSON text they
    were stored as (an ``orjson.Fragment``) instead of being parsed and dumped again. On
    the stream join that round trip and the two records were a fifth of a step's time.
    """
    event_id, ts, app, unit_id, arm, version, features, _, action_id, propensity = row[:10]
    body = {
        "event_id": event_id,
        "features": orjson.Fragment(features) if isinstance(features, str) else features,
        "action_ids": list(action_ids),
        "action_id": action_id,
        "propensity": float(propensity),
        "reward": scored.reward,
        "reward_spec": reward_spec,
        "late": False,
        "app": app,
        "ts": float(ts),
        "unit_id": unit_id,
        "arm": arm,
        "policy_version": version,
        "revision": 0,
        "joined_at": joined_at,
        "n_outcomes": scored.n_outcomes,
        "defaulted": scored.defaulted,
        "signals": dict(scored.signals),
        "components": dict(scored.components),
    }
    defaulted = 1 if scored.defaulted else 0
    return (event_id, reward_spec, 0, app, float(ts), joined_at, scored.reward, 0, defaulted, 1,
            dumps(body))  # fmt: skip


def example_from_body(body: Any) -> Example:
    return Example.from_json(loads(body))
