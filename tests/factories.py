"""Small record factories for tests."""

from __future__ import annotations

from rlops.core.records import Decision, Outcome

ACTIONS = ("a", "b", "c")


def decision(i: int, *, ts: float | None = None, app: str = "pricing") -> Decision:
    return Decision(
        event_id=f"e{i:06d}",
        ts=1000.0 + i if ts is None else ts,
        app=app,
        unit_id=f"u{i % 7}",
        arm="control",
        policy_version="v1",
        features={"x": float(i), "seg": "s1", "n": i % 3, "flag": i % 2 == 0},
        action_ids=ACTIONS,
        action_id=ACTIONS[i % 3],
        propensity=1.0 / 3.0,
    )


def outcome(i: int, event: int, *, ts: float | None = None, **signals: float) -> Outcome:
    return Outcome(
        outcome_id=f"o{i:06d}",
        event_id=f"e{event:06d}",
        ts=1000.0 + event + 1.0 if ts is None else ts,
        signals=signals or {"converted": 1.0, "margin_rate": 0.25},
    )
