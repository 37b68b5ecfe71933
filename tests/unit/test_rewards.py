"""The seed rewards against hand-computed values, and the stability of spec hashes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rlops.core import ValidationError
from rlops.rewards import (
    RewardFunction,
    RewardSpec,
    RewardTerm,
    advisor_reward,
    advisor_spec,
    pricing_reward,
    pricing_spec,
)


def advisor(ret: float, vol: float, dd: float, eng: float) -> float:
    return advisor_reward(
        {"portfolio_return": ret, "volatility": vol, "max_drawdown": dd, "engagement_score": eng}
    ).total


def test_advisor_reward_matches_hand_computed_values() -> None:
    # sharpe = 0.04 / (0.02 + 1e-8); drawdown under the threshold costs nothing.
    assert advisor(0.04, 0.02, 0.10, 5.0) == pytest.approx(0.04 / (0.02 + 1e-8) + 0.5, abs=1e-12)
    # drawdown 0.25 is 0.10 over the 0.15 threshold: -1.0.
    assert advisor(0.04, 0.02, 0.25, 0.0) == pytest.approx(0.04 / (0.02 + 1e-8) - 1.0, abs=1e-12)
    # exactly at the threshold: no penalty.
    assert advisor(0.01, 0.01, 0.15, 0.0) == pytest.approx(0.01 / (0.01 + 1e-8), abs=1e-12)


def test_advisor_zero_volatility_window_is_finite() -> None:
    assert advisor(0.0, 0.0, 0.0, 1.0) == pytest.approx(0.1, abs=1e-12)
    assert advisor(0.001, 0.0, 0.0, 0.0) == pytest.approx(0.001 / 1e-8)


def test_advisor_components_sum_to_total_and_are_named() -> None:
    result = advisor_reward(
        {"portfolio_return": 0.02, "volatility": 0.01, "max_drawdown": 0.2, "engagement_score": 3.0}
    )
    assert set(result.components) == {"sharpe", "drawdown_penalty", "engagement"}
    assert result.components["drawdown_penalty"] == pytest.approx(-0.5)
    assert result.components["engagement"] == pytest.approx(0.3)
    assert result.total == pytest.approx(sum(result.components.values()))


def test_pricing_reward_terms() -> None:
    assert pricing_reward({"converted": 1, "margin_rate": 0.3}).total == pytest.approx(0.3)
    assert pricing_reward({"abandoned_cart": 1}).total == pytest.approx(-0.5)
    assert pricing_reward({"price_changes": 3}).total == pytest.approx(-0.06)
    assert pricing_reward({"clearance_met": 1}).total == pytest.approx(1.0)
    assert pricing_reward({"converted": 0, "margin_rate": 0.3}).total == 0.0
    both = pricing_reward(
        {"converted": 1, "margin_rate": 0.2, "price_changes": 1, "clearance_met": 1}
    )
    assert both.total == pytest.approx(0.2 - 0.02 + 1.0)


def test_hash_is_stable_across_processes() -> None:
    code = (
        "from rlops.rewards import advisor_reward, pricing_reward;"
        "print(advisor_reward.hash, pricing_reward.hash)"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in (1, 2)
    }
    assert outputs == {f"{advisor_reward.hash} {pricing_reward.hash}\n"}


def test_hash_changes_when_any_part_changes() -> None:
    base = advisor_spec()
    variants = [
        advisor_spec(version="2"),
        RewardSpec("advisor2", base.version, base.terms),
        RewardSpec(base.name, base.version, base.terms, code_version="terms-0"),
        RewardSpec(base.name, base.version, base.terms[:2]),
        RewardSpec(
            base.name,
            base.version,
            (RewardTerm("sharpe", "ratio", 2.0, base.terms[0].params), *base.terms[1:]),
        ),
        RewardSpec(
            base.name,
            base.version,
            (
                base.terms[0],
                RewardTerm(
                    "drawdown_penalty",
                    "excess",
                    -10.0,
                    {"signal": "max_drawdown", "threshold": 0.2},
                ),
                base.terms[2],
            ),
        ),
        pricing_spec(flicker_penalty=0.03),
    ]
    hashes = {base.hash} | {v.hash for v in variants}
    assert len(hashes) == len(variants) + 1
    assert RewardSpec.from_json(base.to_json()) == base


@pytest.mark.parametrize(
    "make",
    [
        lambda: RewardTerm("t", "cube", 1.0, {}),
        lambda: RewardTerm("t", "ratio", 1.0, {"numerator": "x"}),
        lambda: RewardSpec("r", "1", ()),
        lambda: RewardSpec("r", "1", (RewardTerm("t", "signal", 1, {"signal": "x"}),) * 2),
        lambda: RewardSpec.from_json({**advisor_spec().to_json(), "hash": "deadbeef"}),
    ],
)
def test_bad_specs_are_refused(make: object) -> None:
    with pytest.raises(ValidationError):
        make()  # type: ignore[operator]


def test_missing_signal_uses_the_term_default() -> None:
    fn = RewardFunction(
        RewardSpec("r", "1", (RewardTerm("t", "signal", 2.0, {"signal": "x", "default": -1.0}),))
    )
    assert fn({"y": 5.0}).total == -2.0
