"""Records: JSON round trips and an invalid-input table per record."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from rlops.core import Decision, Example, Outcome, ValidationError
from tests.factories import decision, outcome


def test_decision_round_trips_through_json() -> None:
    d = decision(3)
    assert Decision.from_json(json.loads(json.dumps(d.to_json()))) == d


def test_outcome_round_trips_and_coerces_booleans() -> None:
    o = Outcome("o1", "e1", 5.0, {"converted": True, "margin_rate": 0.3})
    assert o.signals == {"converted": 1.0, "margin_rate": 0.3}
    assert Outcome.from_json(json.loads(json.dumps(o.to_json()))) == o


def test_example_round_trips_through_json() -> None:
    e = Example(
        "e1",
        {"x": 1.0, "s": "a"},
        ("a", "b"),
        "a",
        0.5,
        1.25,
        "h",
        late=True,
        revision=2,
        signals={"converted": 1.0},
        components={"conversion": 1.25},
    )
    assert Example.from_json(json.loads(json.dumps(e.to_json()))) == e


GOOD: dict[str, Any] = decision(1).to_json()

BAD_DECISIONS = [
    ("event_id", ""),
    ("event_id", "has space"),
    ("ts", math.nan),
    ("ts", "yesterday"),
    ("app", "bad app"),
    ("unit_id", ""),
    ("arm", 3),
    ("action_ids", []),
    ("action_ids", ["a", "a"]),
    ("action_id", "zzz"),
    ("propensity", 0.0),
    ("propensity", 1.5),
    ("propensity", -0.1),
    ("propensity", math.inf),
    ("features", [1, 2]),
    ("features", {"x": math.nan}),
    ("explored", "yes"),
]


@pytest.mark.parametrize(("field", "value"), BAD_DECISIONS)
def test_decision_rejects_bad_field_naming_it(field: str, value: Any) -> None:
    data = {**GOOD, field: value}
    with pytest.raises(ValidationError) as info:
        Decision.from_json(data)
    assert info.value.field is not None
    assert info.value.field.split(".")[0].split("[")[0] == field


def test_decision_missing_field_is_named() -> None:
    data = dict(GOOD)
    del data["propensity"]
    with pytest.raises(ValidationError, match="propensity"):
        Decision.from_json(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("outcome_id", ""),
        ("event_id", None),
        ("ts", math.inf),
        ("signals", {}),
        ("signals", {"x": "high"}),
        ("signals", {"x": math.nan}),
        ("signals", [1]),
    ],
)
def test_outcome_rejects_bad_field(field: str, value: Any) -> None:
    data = {**outcome(1, 1).to_json(), field: value}
    with pytest.raises(ValidationError) as info:
        Outcome.from_json(data)
    assert (info.value.field or "").startswith(field)


def test_example_rejects_non_finite_reward() -> None:
    with pytest.raises(ValidationError, match="reward"):
        Example("e1", {}, ("a",), "a", 1.0, math.nan, "h")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("unit_id", "a\x00b"),
        ("features", {"s": "x\x00"}),
        ("features", {"n": 2**70}),
        ("ts", 10**400),
    ],
)
def test_values_a_backend_cannot_store_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        Decision.from_json({**GOOD, field: value})
