"""The canary's rule table: alerts, evidence, the interval, the deadline, in that order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from rlops.pipeline.canary import ArmRewards, CanaryReview, review_canary
from rlops.pipeline.loop_config import CanaryConfig
from rlops.pipeline.loop_state import CanaryRun

RUN = CanaryRun(version="v2", started_at=1000.0, production="v1")
CONFIG = CanaryConfig(min_decisions=50, min_examples=20, margin=0.05, max_seconds=500.0)
EARLY, LATE = 1100.0, 1500.0  # before and exactly at the deadline


def arm(mean: float, *, n: int = 40, units: int = 10, spread: float = 0.1) -> ArmRewards:
    """``n`` rewards around ``mean`` (seeded) spread over ``units`` units."""
    rng = np.random.default_rng(int(mean * 1000) % 2**32 + n)
    rewards = mean + spread * rng.standard_normal(n)
    return ArmRewards.of(rewards.tolist(), [f"u{i % units}" for i in range(n)])


PRODUCTION = arm(0.5)


def review(
    canary: ArmRewards,
    *,
    now: float = EARLY,
    decisions: int = 100,
    production: ArmRewards = PRODUCTION,
    alerts: Sequence[str] = (),
) -> CanaryReview:
    return review_canary(
        RUN,
        CONFIG,
        now=now,
        decisions=decisions,
        canary=canary,
        production=production,
        alerts=alerts,
    )


def test_firing_alerts_roll_back_at_once_whatever_the_rewards() -> None:
    r = review(arm(2.0), alerts=["error_rate_high", "latency_p99"])
    assert r.verdict == "rollback"
    assert "error_rate_high, latency_p99" in r.reason
    assert r.comparison is None  # the rewards were not even compared


@pytest.mark.parametrize(
    ("decisions", "canary", "missing"),
    [
        (49, arm(0.5), "49/50 decisions"),  # too few served
        (100, arm(0.5, n=19), "19/20 rewards"),  # too few joined
        (100, arm(0.5, units=1), "40/20 rewards"),  # one unit: no variance to speak of
    ],
)
def test_insufficient_evidence_waits_then_rolls_back_at_the_deadline(
    decisions: int, canary: ArmRewards, missing: str
) -> None:
    early = review(canary, decisions=decisions)
    assert early.verdict == "wait"
    assert missing in early.reason
    late = review(canary, decisions=decisions, now=LATE)
    assert late.verdict == "rollback"
    assert "too little evidence after 500 s" in late.reason
    assert f"{decisions} decisions, {len(canary)} rewards (needs 50 and 20)" in late.reason


def test_a_lower_bound_above_minus_margin_promotes() -> None:
    r = review(arm(0.56))  # better than production: the whole interval is above -0.05
    assert r.verdict == "promote"
    c = r.comparison
    assert c is not None and c.low >= -CONFIG.margin
    assert r.reason.startswith("not worse than production")
    assert f"[{c.low:+.4g}, {c.high:+.4g}]" in r.reason
    assert f"{c.difference:+.4g} per decision" in r.reason
    assert "over 10 and 10 units" in r.reason
    assert r.details()["comparison"]["low"] == c.low


def test_an_upper_bound_below_minus_margin_rolls_back() -> None:
    r = review(arm(0.3))
    assert r.verdict == "rollback"
    c = r.comparison
    assert c is not None and c.high < -CONFIG.margin
    assert r.reason.startswith("worse than production")
    assert f"[{c.low:+.4g}, {c.high:+.4g}]" in r.reason


def test_a_worse_canary_within_the_margin_is_not_rolled_back() -> None:
    # Worse by 0.03 but the margin allows 0.05: the upper bound is above -margin.
    r = review(
        arm(0.47, n=400, units=40, spread=0.01),
        production=arm(0.5, n=400, units=40, spread=0.01),
    )
    assert r.comparison is not None and r.comparison.high < 0.0  # it is worse, surely
    assert r.comparison is not None and r.comparison.high > -CONFIG.margin
    assert r.verdict == "promote"


def test_inconclusive_waits_then_rolls_back_at_the_deadline() -> None:
    noisy = arm(0.45, spread=1.0)  # straddles -margin
    early = review(noisy)
    assert early.verdict == "wait"
    c = early.comparison
    assert c is not None and c.low < -CONFIG.margin <= c.high
    assert early.reason.startswith("inconclusive so far")
    late = review(noisy, now=LATE)
    assert late.verdict == "rollback"
    assert late.reason.startswith("inconclusive at the deadline")
    assert f"[{c.low:+.4g}, {c.high:+.4g}]" in late.reason
    assert review(noisy, now=LATE - 1e-6).verdict == "wait"
