"""The pure join: aggregation, windows, defaults, revisions and re-scoring."""

from __future__ import annotations

import pytest

from rlops.apps.defaults import advisor_join_config, pricing_join_config
from rlops.core import Outcome, ValidationError
from rlops.rewards import (
    JoinConfig,
    aggregate_signals,
    join_decision,
    pricing_reward,
    pricing_spec,
    rescore,
    window_closed,
)
from rlops.rewards.spec import RewardFunction
from tests.factories import decision

D = decision(0, ts=1000.0)


def outs(*values: tuple[float, float]) -> list[Outcome]:
    return [Outcome(f"o{i}", D.event_id, ts, {"x": v}) for i, (ts, v) in enumerate(values)]


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [("sum", 6.0), ("earliest", 1.0), ("latest", 2.0), ("mean", 2.0), ("min", 1.0), ("max", 3.0)],
)
def test_aggregations_over_event_time(aggregation: str, expected: float) -> None:
    config = JoinConfig("pricing", pricing_reward, 100.0, aggregation=aggregation)  # type: ignore[arg-type]
    # given out of order: earliest/latest follow ts, not arrival
    values = outs((1030.0, 2.0), (1010.0, 1.0), (1020.0, 3.0))
    assert aggregate_signals(1000.0, values, config) == {"x": expected}


@pytest.mark.parametrize("aggregation", ["sum", "earliest", "latest", "mean", "min", "max"])
def test_one_outcome_aggregates_to_its_own_values_inside_their_windows(aggregation: str) -> None:
    """One outcome takes a shortcut past the reducers: it must agree with them, and keep
    the window's boundary (an outcome exactly at its signal's limit counts)."""
    config = JoinConfig(
        "pricing", pricing_reward, 100.0, aggregation=aggregation,  # type: ignore[arg-type]
        signal_windows={"a": 10.0, "b": 5.0},
    )  # fmt: skip
    only = Outcome("o", D.event_id, 1010.0, {"b": 2.0, "a": -1.5, "c": 0.25})
    assert aggregate_signals(1000.0, [only], config) == {"a": -1.5, "c": 0.25}
    assert list(aggregate_signals(1000.0, [only], config)) == ["a", "c"]  # sorted, as many
    twin = Outcome("p", D.event_id, 1010.0, {"a": -1.5})
    many = aggregate_signals(1000.0, [only, twin], config)
    assert many["c"] == 0.25 and list(many) == ["a", "c"]


def test_signal_windows_and_overrides() -> None:
    config = pricing_join_config()
    sale_late = Outcome("s", D.event_id, D.ts + 7200, {"converted": 1, "margin_rate": 0.3})
    clear = Outcome("c", D.event_id, D.ts + 7 * 86400, {"clearance_met": 1})
    example = join_decision(D, [sale_late, clear], config, joined_at=D.ts + 7 * 86400)
    assert example.signals == {"clearance_met": 1.0}  # the sale came after its 1-hour window
    assert example.reward == pytest.approx(1.0)
    sale = Outcome("s2", D.event_id, D.ts + 60, {"converted": 1, "margin_rate": 0.3})
    example = join_decision(D, [sale, clear], config, joined_at=D.ts + 7 * 86400)
    assert example.reward == pytest.approx(1.3)
    assert example.components["conversion_margin"] == pytest.approx(0.3)
    assert example.n_outcomes == 2 and not example.defaulted


def test_no_outcome_gives_the_default_reward() -> None:
    config = JoinConfig("pricing", pricing_reward, 10.0, default_reward=-0.25)
    example = join_decision(D, [], config, joined_at=2000.0)
    assert example.defaulted and example.reward == -0.25 and example.components == {}
    assert example.reward_spec == pricing_reward.hash
    assert (example.propensity, example.action_id) == (D.propensity, D.action_id)


def test_duplicate_outcome_ids_count_once() -> None:
    config = JoinConfig("pricing", pricing_reward, 10.0)
    sale = Outcome("o1", D.event_id, D.ts + 1, {"converted": 1, "margin_rate": 0.4})
    assert join_decision(D, [sale, sale], config, joined_at=0).reward == pytest.approx(0.4)


def test_window_closes_exactly_at_its_end() -> None:
    config = advisor_join_config()
    assert config.window_seconds == 30 * 86400
    d = decision(1, ts=0.0, app="advisor")
    assert not window_closed(d, 30 * 86400 - 0.001, config)
    assert window_closed(d, 30 * 86400, config)


def test_join_refuses_mismatched_inputs() -> None:
    config = JoinConfig("advisor", pricing_reward, 10.0)
    with pytest.raises(ValidationError, match="app"):
        join_decision(D, [], config, joined_at=0)
    other = Outcome("o", "someone-else", 1.0, {"x": 1})
    with pytest.raises(ValidationError, match="belongs"):
        join_decision(D, [other], JoinConfig("pricing", pricing_reward, 10.0), joined_at=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_seconds": -1.0},
        {"window_seconds": float("inf")},
        {"aggregation": "median"},
        {"signal_aggregation": {"x": "mode"}},
        {"signal_windows": {"x": 11.0}},
        {"default_reward": float("nan")},
    ],
)
def test_bad_join_configs_are_refused(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"app": "pricing", "reward": pricing_reward, "window_seconds": 10.0}
    with pytest.raises(ValidationError):
        JoinConfig(**{**base, **kwargs})  # type: ignore[arg-type]


def test_rescore_tags_new_version_and_leaves_old_examples() -> None:
    config = JoinConfig("pricing", pricing_reward, 10.0)
    sale = Outcome(
        "o1", D.event_id, D.ts + 1, {"converted": 1, "margin_rate": 0.4, "price_changes": 2}
    )
    old = [
        join_decision(D, [sale], config, joined_at=0),
        join_decision(decision(1), [], config, joined_at=0),
    ]
    harsher = RewardFunction(pricing_spec(version="2", flicker_penalty=0.1))
    new = rescore(old, harsher)
    assert [e.reward_spec for e in new] == [harsher.hash] * 2
    assert new[0].reward == pytest.approx(0.4 - 0.2)
    assert old[0].reward == pytest.approx(0.4 - 0.04)
    assert new[1].reward == old[1].reward and new[1].defaulted
