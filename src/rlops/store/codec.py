"""Row encoding shared by every SQL backend: records <-> tuples of plain values."""

from __future__ import annotations

from typing import Any

import orjson

from rlops.core.records import Decision, Example, Outcome

DECISION_COLUMNS = (
    "event_id",
    "ts",
    "app",
    "unit_id",
    "arm",
    "policy_version",
    "features",
    "action_ids",
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


_IDS_JSON: dict[tuple[str, ...], str] = {}


def _ids_json(ids: tuple[str, ...]) -> str:
    """Action-id lists repeat (one per catalog version), so encode each once."""
    text = _IDS_JSON.get(ids)
    if text is None:
        if len(_IDS_JSON) > 1024:
            _IDS_JSON.clear()
        text = _IDS_JSON[ids] = orjson.dumps(ids).decode()
    return text


def decision_row(d: Decision) -> tuple[Any, ...]:
    return (
        d.event_id,
        d.ts,
        d.app,
        d.unit_id,
        d.arm,
        d.policy_version,
        orjson.dumps(d.features).decode(),
        _ids_json(d.action_ids),
        d.action_id,
        d.propensity,
        1 if d.explored else 0,
    )


def decision_from_row(row: tuple[Any, ...]) -> Decision:
    return Decision(
        event_id=row[0],
        ts=row[1],
        app=row[2],
        unit_id=row[3],
        arm=row[4],
        policy_version=row[5],
        features=loads(row[6]),
        action_ids=tuple(loads(row[7])),
        action_id=row[8],
        propensity=row[9],
        explored=bool(row[10]),
    )


def outcome_row(o: Outcome, received_at: float) -> tuple[Any, ...]:
    return (o.outcome_id, o.event_id, o.ts, orjson.dumps(o.signals).decode(), received_at)


def outcome_from_row(row: tuple[Any, ...]) -> Outcome:
    return Outcome(outcome_id=row[0], event_id=row[1], ts=row[2], signals=loads(row[3]))


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


def example_from_body(body: Any) -> Example:
    return Example.from_json(loads(body))
