"""Our estimators against obp 0.5.7 on identical inputs (a copy of ``../shared/reference/ope``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlops.ope import (
    DROS,
    IPS,
    SNDR,
    SNIPS,
    BanditInputs,
    DirectMethod,
    DoublyRobust,
    Estimator,
    Normal,
    SwitchDR,
    estimate_all,
)

# A copy of ``../shared/reference/ope`` kept in the repository, so a clean clone on any
# machine runs these comparisons (the shared folder is not part of a checkout).
REFERENCE = Path(__file__).resolve().parent / "fixtures" / "obp_reference"
BOOT_KEY = (
    "obp_bootstrap_ci95_with_q_hat_logreg(1000 resamples; resampling differs between "
    "implementations, compare loosely)"
)
ESTIMATORS: dict[str, Estimator] = {
    "ipw": IPS(),
    "snipw": SNIPS(),
    "dm": DirectMethod(),
    "dr": DoublyRobust(),
    "sndr": SNDR(),
    "switch-dr(lambda=5)": SwitchDR(switch=5.0),
    "dr-os(lambda=10)": DROS(shrinkage=10.0),
    "clipped-ipw(lambda=5)": IPS(clip=5.0),
}
# obp's normal interval for a self-normalised estimator treats w_i r_i / mean(w) as i.i.d.
# terms; ours resamples numerator and denominator jointly (delta method), see report.
RATIOS = {"snipw", "sndr"}


@pytest.fixture(scope="module")
def reference() -> tuple[Any, dict[str, Any]]:
    data = np.load(REFERENCE / "synthetic.npz")
    expected = json.loads((REFERENCE / "expected.json").read_text())
    return data, expected


def _inputs(data: Any, policy: str, q_hat: str) -> BanditInputs:
    return BanditInputs.of(
        reward=data["reward"],
        pscore=data["pscore"],
        action=data["action"],
        action_dist=data[f"action_dist_{policy}"],
        q_hat=data[q_hat],
    )


@pytest.mark.parametrize("policy", ["egreedy", "uniform"])
@pytest.mark.parametrize(
    ("q_hat", "section"),
    [("q_hat_logreg", "with_q_hat_logreg"), ("expected_reward", "with_expected_reward")],
)
def test_point_estimates_match_obp(
    reference: tuple[Any, dict[str, Any]], policy: str, q_hat: str, section: str
) -> None:
    data, expected = reference
    wanted = expected["policies"][policy][section]
    results = estimate_all(
        list(ESTIMATORS.values()), _inputs(data, policy, q_hat), interval_config=Normal()
    )
    for key, result in zip(ESTIMATORS, results, strict=True):
        assert result.value == pytest.approx(wanted[key], rel=1e-6), key


@pytest.mark.parametrize("policy", ["egreedy", "uniform"])
def test_ground_truth_definition_matches(
    reference: tuple[Any, dict[str, Any]], policy: str
) -> None:
    data, expected = reference
    truth = np.mean(np.sum(data[f"action_dist_{policy}"] * data["expected_reward"], axis=1))
    assert truth == pytest.approx(expected["policies"][policy]["ground_truth"], rel=1e-9)


@pytest.mark.parametrize("policy", ["egreedy", "uniform"])
def test_normal_intervals_match_obp_for_plain_means(
    reference: tuple[Any, dict[str, Any]], policy: str
) -> None:
    data, expected = reference
    wanted = expected["policies"][policy]["normal_approx_ci95_with_q_hat_logreg"]
    results = estimate_all(
        list(ESTIMATORS.values()), _inputs(data, policy, "q_hat_logreg"), interval_config=Normal()
    )
    for key, result in zip(ESTIMATORS, results, strict=True):
        if key in RATIOS:
            # ours is the delta-method interval, never wider than obp's fixed-normaliser one
            assert wanted[key][0] - 1e-9 <= result.low < result.value < result.high
            assert result.high <= wanted[key][1] + 1e-9
        else:
            assert (result.low, result.high) == pytest.approx(tuple(wanted[key]), rel=1e-6), key


@pytest.mark.parametrize("policy", ["egreedy", "uniform"])
def test_bootstrap_intervals_close_to_obp(
    reference: tuple[Any, dict[str, Any]], policy: str
) -> None:
    data, expected = reference
    wanted = expected["policies"][policy][BOOT_KEY]
    results = estimate_all(list(ESTIMATORS.values()), _inputs(data, policy, "q_hat_logreg"))
    for key, result in zip(ESTIMATORS, results, strict=True):
        if key in RATIOS:
            continue
        width = wanted[key][1] - wanted[key][0]
        assert result.low == pytest.approx(wanted[key][0], abs=0.1 * width), key
        assert result.high == pytest.approx(wanted[key][1], abs=0.1 * width), key
