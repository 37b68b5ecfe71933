"""The join's fast example row is the record path's row, byte for byte.

``joined_example_row`` builds a first example straight from a stored decision row (its
features kept as the stored JSON text); the body must be exactly what
``example_row(join_decision(decision_from_row(row), ...))`` writes, for any features the
log accepts and any outcomes, or readers of either would see two formats.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rlops.core import Decision, Outcome
from rlops.rewards import JoinConfig, join_decision, pricing_reward
from rlops.rewards.join import score_outcomes
from rlops.store.codec import (
    DECISION_COLUMNS,
    decision_from_row,
    decision_rows,
    example_row,
    joined_example_row,
)

CONFIG = JoinConfig(
    "pricing",
    pricing_reward,
    100.0,
    aggregation="sum",
    signal_aggregation={"margin_rate": "latest"},
    signal_windows={"converted": 10.0},
    default_reward=-0.05,
)
ACTIONS = ("a", "b", "ç")
names = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=8,
)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**53), 2**53),
    st.booleans(),
    st.text(max_size=6),
)
signal_values = st.floats(-1e6, 1e6, allow_nan=False)


@st.composite
def decisions_with_outcomes(draw: st.DrawFn) -> tuple[Decision, list[Outcome]]:
    ts = draw(st.floats(0.0, 1e9, allow_nan=False))
    decision = Decision(
        event_id="e1",
        ts=ts,
        app="pricing",
        unit_id=draw(names),
        arm="control",
        policy_version="v1",
        features=draw(st.dictionaries(names, values, max_size=6)),
        action_ids=ACTIONS,
        action_id=draw(st.sampled_from(ACTIONS)),
        propensity=draw(st.floats(0.01, 1.0)),
    )
    signals = st.dictionaries(
        st.sampled_from(["converted", "margin_rate", "abandoned_cart", "other"]),
        signal_values,
        min_size=1,
        max_size=4,
    )
    outcomes = [
        Outcome(f"o{i}", "e1", ts + draw(st.floats(0.0, 50.0)), draw(signals))
        for i in range(draw(st.integers(0, 4)))
    ]
    return decision, outcomes


@settings(max_examples=300, deadline=None)
@given(case=decisions_with_outcomes(), joined_at=st.floats(0.0, 2e9, allow_nan=False))
def test_the_fast_row_equals_the_record_path(
    case: tuple[Decision, list[Outcome]], joined_at: float
) -> None:
    decision, outcomes = case
    (row,) = decision_rows([decision])  # as the log stores it: features as JSON text
    assert len(row) == len(DECISION_COLUMNS)
    sets = {row[DECISION_COLUMNS.index("action_set")]: ACTIONS}
    expected = example_row(
        join_decision(decision_from_row(row, sets), outcomes, CONFIG, joined_at=joined_at)
    )
    fast = joined_example_row(
        row,
        ACTIONS,
        score_outcomes(decision.ts, outcomes, CONFIG),
        reward_spec=CONFIG.reward.hash,
        joined_at=joined_at,
    )
    assert fast == expected
