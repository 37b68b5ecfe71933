"""Apprentice mode: the verdict rule, the serving switch, the held-out split, the report."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from rlops.core.actions import ActionCatalog
from rlops.core.errors import ValidationError
from rlops.learn.apprentice import (
    ApprenticeConfig,
    holdout_split,
    match_rate,
    train_apprentice,
)
from rlops.learn.bc import BCConfig
from rlops.policies.apprentice import ApprenticePolicy, may_act
from rlops.policies.contract import Features, Probs
from tests.learn.helpers import CATALOG, bandit_data


@dataclass(frozen=True)
class Fixed:
    index: int

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs:
        out = np.zeros((len(features), len(actions)))
        out[:, self.index] = 1.0
        return out


@pytest.mark.parametrize(
    ("rate", "threshold", "expected"),
    [(0.95, 0.9, True), (0.9, 0.9, False), (0.5, 0.9, False), (1.0, 0.0, True), (0.0, 0.0, False)],
)
def test_may_act_only_strictly_above_the_threshold(
    rate: float, threshold: float, expected: bool
) -> None:
    assert may_act(rate, threshold) is expected


@pytest.mark.parametrize(
    ("rate", "threshold", "field"),
    [(1.2, 0.9, "match_rate"), (math.nan, 0.9, "match_rate"), (0.9, -0.1, "threshold")],
)
def test_may_act_refuses_rates_outside_zero_one(rate: float, threshold: float, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        may_act(rate, threshold)
    assert caught.value.field == field


def test_the_incumbent_serves_until_the_apprentice_may_act() -> None:
    x = np.zeros((4, 3), dtype=np.float32)
    waiting = ApprenticePolicy(Fixed(0), Fixed(2), acting=False)
    acting = ApprenticePolicy(Fixed(0), Fixed(2), acting=True)
    assert (waiting.probabilities(x, CATALOG).argmax(axis=1) == 0).all()
    assert (acting.probabilities(x, CATALOG).argmax(axis=1) == 2).all()
    assert waiting.agreement(x, CATALOG) == 0.0


def test_match_rate_counts_top_allowed_actions() -> None:
    data = bandit_data(300)
    # Action 1 where it is allowed, else the first allowed action (every score ties at 0).
    top = np.where(data.allowed[:, 1], 1, data.allowed.argmax(axis=1))
    expected = np.mean(top == data.actions)
    assert match_rate(Fixed(1), data) == pytest.approx(expected)


def test_holdout_split_keeps_units_whole() -> None:
    data = bandit_data(500)
    train, held = holdout_split(data, 0.2, seed=0)
    assert len(train) + len(held) == len(data)
    assert not set(train.unit_ids) & set(held.unit_ids)
    assert len(set(held.unit_ids)) == 2  # 20% of 10 units


@pytest.mark.parametrize(("field", "value"), [("threshold", 1.5), ("holdout_fraction", 1.0)])
def test_invalid_config_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as caught:
        ApprenticeConfig(**{field: value})  # type: ignore[arg-type]  # the table's values
    assert caught.value.field == field


def test_config_json_round_trip() -> None:
    config = ApprenticeConfig(bc=BCConfig(steps=10, hidden=(4,)), threshold=0.8, seed=3)
    assert ApprenticeConfig.from_json(config.to_json()) == config


def test_report_and_serving() -> None:
    data = bandit_data(400)
    config = ApprenticeConfig(bc=BCConfig(steps=20, batch_size=32), threshold=0.99)
    apprentice = train_apprentice(data, config)
    report = apprentice.report
    assert report.n_train + report.n_holdout == len(data)
    assert 0.0 <= report.match_rate <= 1.0
    assert report.may_act is (report.match_rate > 0.99)
    assert report.to_json()["threshold"] == 0.99
    serving = apprentice.serving(Fixed(1))
    assert serving.acting is report.may_act
