"""Exploration schedules and wrappers: rates, floors, and that rows stay distributions."""

from __future__ import annotations

import numpy as np
import pytest

from rlops.core.clock import ManualClock
from rlops.core.errors import ValidationError
from rlops.exploration import (
    ExplorationConfig,
    Explorer,
    Schedule,
    epsilon_mix,
    tempered,
    with_floor,
)


def test_constant_linear_and_exponential_schedules() -> None:
    assert Schedule("constant", 0.2).value(1e9) == 0.2
    linear = Schedule("linear", 0.5, 0.1, horizon=100)
    assert linear.value(0) == 0.5
    assert linear.value(50) == pytest.approx(0.3)
    assert linear.value(1000) == pytest.approx(0.1)
    expo = Schedule("exponential", 0.5, 0.1, horizon=10)
    assert expo.value(10) == pytest.approx(0.1 + 0.4 / 2)
    assert expo.value(30) == pytest.approx(0.1 + 0.4 / 8)
    assert linear.value(-5) == 0.5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "cosine"}, "schedule.kind"),
        ({"start": -0.1}, "schedule.start"),
        ({"start": float("inf")}, "schedule.start"),
        ({"kind": "linear", "horizon": 0.0}, "schedule.horizon"),
        ({"unit": "steps"}, "schedule.unit"),
    ],
)
def test_bad_schedules_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Schedule(**kwargs)  # type: ignore[arg-type]  # deliberately wrong values
    assert info.value.field == field


def test_epsilon_mix_spreads_over_allowed_actions_only() -> None:
    p = np.array([[1.0, 0.0, 0.0, 0.0]])
    allowed = np.array([[True, True, False, True]])
    out = epsilon_mix(p, allowed, 0.3)
    np.testing.assert_allclose(out, [[0.7 + 0.1, 0.1, 0.0, 0.1]])


def test_the_floor_lifts_every_allowed_action_and_nothing_else() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(5, 0.2), size=100)
    allowed = rng.random((100, 5)) < 0.7
    allowed[:, 0] = True
    p = np.where(allowed, p, 0.0)
    p = np.where(p.sum(axis=1, keepdims=True) > 0, p, allowed.astype(float))
    p /= p.sum(axis=1, keepdims=True)
    out = with_floor(p, allowed, 0.05)
    assert np.all(out[allowed] >= 0.05 - 1e-12)
    assert np.all(out[~allowed] == 0.0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)


def test_a_floor_above_one_over_k_gives_uniform() -> None:
    out = with_floor(np.array([[1.0, 0.0]]), np.ones((1, 2), dtype=bool), 0.9)
    np.testing.assert_allclose(out, [[0.5, 0.5]])


def test_temperature_flattens_and_sharpens() -> None:
    p = np.array([[0.6, 0.3, 0.1]])
    allowed = np.ones((1, 3), dtype=bool)
    np.testing.assert_allclose(tempered(p, allowed, 1.0), p)
    hot = tempered(p, allowed, 10.0)
    cold = tempered(p, allowed, 0.1)
    assert hot.max() < p.max() < cold.max()
    scores = np.array([[2.0, 1.0, 0.0]])
    expected = np.exp(scores / 0.5) / np.exp(scores / 0.5).sum()
    np.testing.assert_allclose(tempered(p, allowed, 0.5, scores), expected)


def test_epsilon_decays_by_decisions() -> None:
    config = ExplorationConfig("epsilon", Schedule("linear", 0.4, 0.0, horizon=100))
    explorer = Explorer(config, ManualClock())
    assert explorer.rate() == pytest.approx(0.4)
    explorer.advance(50)
    assert explorer.rate() == pytest.approx(0.2)
    explorer.advance(500)
    assert explorer.rate() == 0.0
    out = explorer.apply(np.array([[1.0, 0.0]]), np.ones((1, 2), dtype=bool))
    np.testing.assert_array_equal(out, [[1.0, 0.0]])


def test_epsilon_decays_by_clock_time() -> None:
    clock = ManualClock(1000.0)
    schedule = Schedule("exponential", 0.5, 0.0, horizon=3600, unit="seconds")
    explorer = Explorer(ExplorationConfig("epsilon", schedule, floor=0.01), clock)
    explorer.advance(10**6)  # decisions do not count on a clock schedule
    assert explorer.rate() == pytest.approx(0.5)
    clock.advance(7200)
    assert explorer.rate() == pytest.approx(0.125)


def test_config_round_trips_and_checks() -> None:
    config = ExplorationConfig("softmax", Schedule("linear", 2.0, 0.5, 1000), floor=0.02)
    assert ExplorationConfig.from_json(config.to_json()) == config
    with pytest.raises(ValidationError):
        ExplorationConfig("epsilon", Schedule("constant", 1.5))
    with pytest.raises(ValidationError):
        ExplorationConfig("softmax", Schedule("constant", 0.0))
    with pytest.raises(ValidationError):
        ExplorationConfig("epsilon", floor=1.5)
