"""The wire types' constraints agree with the records' constructors, record by record.

Stream records are validated by msgspec constraints in C (``rlops.stream.wire``) instead
of the constructors' Python checks. Here any record, valid or broken in any field, is
decoded both ways: the loose types the constructors used to receive, then the validating
constructor; and the constrained types, then ``trusted``. Both must accept or both
refuse, and accepted records must be equal.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from rlops.core.errors import RlopsError
from rlops.core.records import Decision, Outcome
from rlops.stream.codec import decode_entry

FeatureValue = bool | int | float | str


class LooseDecision(msgspec.Struct, array_like=True):
    event_id: str
    ts: float
    app: str
    unit_id: str
    arm: str
    policy_version: str
    features: dict[str, FeatureValue]
    action_ids: tuple[str, ...]
    action_id: str
    propensity: float
    explored: bool


class LooseOutcome(msgspec.Struct, array_like=True):
    outcome_id: str
    event_id: str
    ts: float
    signals: dict[str, float]


TEXT = st.sampled_from(
    ["e1", "a", "", " x", "a\x00b", "x" * 128, "x" * 129, "x" * 256, "x" * 257, "bad id!",
     "e:1.2+3-4_5", "abc\n", "-lead", "é", "A9"]
)  # fmt: skip
NUMBER = st.one_of(
    st.sampled_from(
        [0, 1, -1, 0.5, 1.0, 1.0000001, 2.0, -0.0, 1e308, -1e308, math.inf, -math.inf,
         math.nan, 2**63 - 1, -(2**63), 2**63, 2**64 - 1, 1e-320, 1_800_000_000.5]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
)  # fmt: skip
VALUE = st.one_of(NUMBER, TEXT, st.booleans())
FEATURES = st.dictionaries(TEXT, VALUE, max_size=4)
IDS = st.lists(st.sampled_from(["a", "b", "c", "", "a\x00"]), max_size=4).map(tuple)


VALID_DECISION = ["e1", 1.5, "pricing", "u1", "control", "v1", {"x": 1.0, "n": 2},
                  ("a", "b"), "b", 0.5, False]  # fmt: skip
VALID_OUTCOME = ["o1", "e1", 2.5, {"converted": 1.0}]
DECISION_FIELD = [TEXT, NUMBER, TEXT, TEXT, TEXT, TEXT, FEATURES, IDS,
                  st.sampled_from(["a", "b", "z", ""]), NUMBER, st.booleans()]  # fmt: skip
OUTCOME_FIELD = [TEXT, TEXT, NUMBER, st.dictionaries(TEXT, st.one_of(NUMBER, st.booleans()))]


def mutated(valid: list[Any], pools: list[st.SearchStrategy[Any]]) -> st.SearchStrategy[list[Any]]:
    """A valid record with up to two fields drawn from the edge-case pools: most draws
    sit right at the boundary between accepted and refused."""

    @st.composite
    def build(draw: st.DrawFn) -> list[Any]:
        fields = list(valid)
        for i in draw(st.lists(st.integers(0, len(valid) - 1), max_size=2)):
            fields[i] = draw(pools[i])
        return fields

    return build()


def decision_fields() -> st.SearchStrategy[list[Any]]:
    return mutated(VALID_DECISION, DECISION_FIELD)


def outcome_fields() -> st.SearchStrategy[list[Any]]:
    return mutated(VALID_OUTCOME, OUTCOME_FIELD)


def slow(kind: type, loose: type[msgspec.Struct], payload: bytes) -> Any:
    """The previous path: type-checked decode, then the validating constructor."""
    try:
        wire = msgspec.msgpack.decode(payload, type=loose)
        return kind(*(getattr(wire, f) for f in loose.__struct_fields__))
    except (msgspec.DecodeError, RlopsError):
        return None


def fast(field: bytes, payload: bytes) -> Any:
    decoded = decode_entry({field: msgspec.msgpack.encode([msgspec.Raw(payload)])})
    return decoded.records[0] if decoded.records else None


def same(a: Any, b: Any) -> bool:
    """Equal records (NaN never survives either path, so == is exact)."""
    return a == b and type(a) is type(b)


@settings(max_examples=600)
@given(decision_fields())
def test_decisions_are_accepted_and_refused_as_the_constructor_does(fields: list[Any]) -> None:
    payload = msgspec.msgpack.encode(fields)
    expected = slow(Decision, LooseDecision, payload)
    got = fast(b"D", payload)
    assert (expected is None) == (got is None), (fields, expected, got)
    assert expected is None or same(expected, got)


@settings(max_examples=400)
@given(outcome_fields())
def test_outcomes_are_accepted_and_refused_as_the_constructor_does(fields: list[Any]) -> None:
    payload = msgspec.msgpack.encode(fields)
    expected = slow(Outcome, LooseOutcome, payload)
    got = fast(b"O", payload)
    assert (expected is None) == (got is None), (fields, expected, got)
    assert expected is None or same(expected, got)


def test_a_valid_decision_round_trips_through_both() -> None:
    fields = ["e1", 1.5, "pricing", "u1", "control", "v1", {"x": 1.0, "n": 2, "s": "a",
              "b": True}, ("a", "b"), "b", 0.5, False]  # fmt: skip
    payload = msgspec.msgpack.encode(fields)
    assert fast(b"D", payload) == slow(Decision, LooseDecision, payload) is not None
