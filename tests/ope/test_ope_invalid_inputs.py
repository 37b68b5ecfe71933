"""Invalid inputs: each raises ValidationError naming the offending field."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rlops.core.errors import ValidationError
from rlops.ope import (
    DROS,
    IPS,
    BanditInputs,
    Bernstein,
    Bootstrap,
    DirectMethod,
    SwitchDR,
    estimate,
)
from rlops.ope.diagnostics import Thresholds
from rlops.ope.reward_models import RewardModel

N, K = 4, 3
GOOD: dict[str, Any] = {
    "reward": np.array([1.0, 0.0, 1.0, 0.5]),
    "pscore": np.array([0.5, 0.25, 0.5, 1.0]),
    "action": np.array([0, 1, 2, 0]),
    "action_dist": np.full((N, K), 1 / 3),
    "q_hat": np.full((N, K), 0.5),
}


def _with(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


CASES = [
    ("zero propensity", _with(pscore=np.array([0.0, 0.25, 0.5, 1.0])), "pscore"),
    ("negative propensity", _with(pscore=np.array([-0.5, 0.25, 0.5, 1.0])), "pscore"),
    ("propensity above 1", _with(pscore=np.array([1.5, 0.25, 0.5, 1.0])), "pscore"),
    ("NaN propensity", _with(pscore=np.array([np.nan, 0.25, 0.5, 1.0])), "pscore"),
    ("NaN reward", _with(reward=np.array([np.nan, 0.0, 1.0, 0.5])), "reward"),
    ("infinite reward", _with(reward=np.array([np.inf, 0.0, 1.0, 0.5])), "reward"),
    ("empty log", _with(reward=np.array([])), "reward"),
    ("reward not 1-d", _with(reward=np.ones((N, 1))), "reward"),
    ("pscore too short", _with(pscore=np.array([0.5, 0.5])), "pscore"),
    ("action too short", _with(action=np.array([0, 1])), "action"),
    ("float actions", _with(action=np.array([0.0, 1.0, 2.0, 0.0])), "action"),
    ("action out of range", _with(action=np.array([0, 1, 3, 0])), "action"),
    ("negative action", _with(action=np.array([0, -1, 2, 0])), "action"),
    ("rows not summing to 1", _with(action_dist=np.full((N, K), 0.3)), "action_dist"),
    ("negative probability", _with(action_dist=np.tile([1.5, -0.5, 0.0], (N, 1))), "action_dist"),
    ("action_dist wrong rows", _with(action_dist=np.full((N + 1, K), 1 / 3)), "action_dist"),
    ("action_dist 1-d", _with(action_dist=np.full(N, 1.0)), "action_dist"),
    ("NaN in action_dist", _with(action_dist=np.full((N, K), np.nan)), "action_dist"),
    ("q_hat wrong shape", _with(q_hat=np.full((N, K + 1), 0.5)), "q_hat"),
    ("NaN in q_hat", _with(q_hat=np.full((N, K), np.nan)), "q_hat"),
    ("non-numeric reward", _with(reward=np.array(["a", "b", "c", "d"])), "reward"),
]


@pytest.mark.parametrize(("case", "inputs", "field"), CASES, ids=[c[0] for c in CASES])
def test_invalid_inputs_name_the_field(case: str, inputs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        BanditInputs.of(**inputs)
    assert raised.value.field == field, case


def test_dm_without_reward_model_names_q_hat() -> None:
    data = BanditInputs.of(**_with(q_hat=None))
    with pytest.raises(ValidationError) as raised:
        estimate(DirectMethod(), data)
    assert raised.value.field == "q_hat"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: IPS(clip=-1.0), "clip"),
        (lambda: IPS(clip=float("nan")), "clip"),
        (lambda: SwitchDR(switch=-1.0), "switch"),
        (lambda: DROS(shrinkage=-2.0), "shrinkage"),
        (lambda: Bootstrap(level=1.0), "level"),
        (lambda: Bootstrap(level=0.0), "level"),
        (lambda: Bootstrap(n_resamples=1), "n_resamples"),
        (lambda: Bernstein(low=1.0, high=0.0), "high"),
        (lambda: Thresholds(min_ess_share=2.0), "thresholds"),
        (lambda: RewardModel(n_folds=0), "n_folds"),
        (lambda: RewardModel(kind="forest"), "kind"),  # type: ignore[arg-type]  # bad on purpose
    ],
)
def test_invalid_configs(build: Any, field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        build()
    assert raised.value.field == field


def test_bernstein_refuses_terms_outside_bounds() -> None:
    data = BanditInputs.of(**GOOD)
    with pytest.raises(ValidationError, match="outside the stated bounds"):
        estimate(IPS(), data, interval_config=Bernstein(low=0.0, high=0.5))


def test_logistic_model_needs_binary_rewards() -> None:
    with pytest.raises(ValidationError) as raised:
        RewardModel(kind="logistic").fit_predict(
            context=np.zeros((N, 2)), action=GOOD["action"], reward=GOOD["reward"], n_actions=K
        )
    assert raised.value.field == "reward"
