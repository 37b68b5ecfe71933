"""The canary's verdict: wait, promote or roll back, with the reason in words.

A pure function over what the log and the alerts say, so the rule can be read and tested
apart from the registry moves it leads to. Order matters: a firing guardrail alert ends a
canary at once, whatever the rewards say; then evidence must be sufficient (decisions
served and rewards joined) before any comparison is trusted; then the interval decides;
and a canary that stays inconclusive past its deadline is rolled back rather than left
serving on hope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rlops.pipeline.arm_comparison import Comparison, arm_mean, compare_arms
from rlops.pipeline.loop_config import CanaryConfig
from rlops.pipeline.loop_state import CanaryRun

Verdict = Literal["wait", "promote", "rollback"]


@dataclass(frozen=True, slots=True)
class ArmRewards:
    """One arm's joined rewards per decision and the unit each decision was for."""

    rewards: npt.NDArray[np.float64]
    units: npt.NDArray[np.str_]

    @classmethod
    def of(cls, rewards: Sequence[float], units: Sequence[str]) -> ArmRewards:
        return cls(np.asarray(rewards, dtype=np.float64), np.asarray(units, dtype=np.str_))

    def __len__(self) -> int:
        return len(self.rewards)


@dataclass(frozen=True, slots=True)
class CanaryReview:
    verdict: Verdict
    reason: str
    decisions: int
    examples: int
    comparison: Comparison | None = None

    def details(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "examples": self.examples,
            "comparison": None if self.comparison is None else self.comparison.to_json(),
        }


def review_canary(
    run: CanaryRun,
    config: CanaryConfig,
    *,
    now: float,
    decisions: int,
    canary: ArmRewards,
    production: ArmRewards,
    alerts: Sequence[str] = (),
) -> CanaryReview:
    """Decide on ``run`` from its served ``decisions`` and both arms' joined rewards."""
    n = len(canary)
    if alerts:
        return CanaryReview(
            "rollback", f"guardrail alerts firing on the canary: {', '.join(alerts)}", decisions, n
        )
    overdue = now - run.started_at >= config.max_seconds
    enough = (
        decisions >= config.min_decisions
        and n >= config.min_examples
        and len(set(canary.units.tolist())) >= 2
        and len(set(production.units.tolist())) >= 2
    )
    if not enough:
        if overdue:
            return CanaryReview(
                "rollback",
                f"too little evidence after {config.max_seconds:g} s: {decisions} decisions, "
                f"{n} rewards (needs {config.min_decisions} and {config.min_examples})",
                decisions,
                n,
            )
        return CanaryReview(
            "wait",
            f"{decisions}/{config.min_decisions} decisions, {n}/{config.min_examples} rewards",
            decisions,
            n,
        )
    comparison = compare_arms(
        arm_mean(canary.rewards, canary.units),
        arm_mean(production.rewards, production.units),
        level=config.level,
    )
    c = comparison
    figures = (
        f"canary - production = {c.difference:+.4g} per decision, "
        f"{c.level:.0%} interval [{c.low:+.4g}, {c.high:+.4g}] over "
        f"{c.canary.units} and {c.production.units} units"
    )
    if c.low >= -config.margin:
        return CanaryReview("promote", f"not worse than production: {figures}", decisions, n, c)
    if c.high < -config.margin:
        return CanaryReview("rollback", f"worse than production: {figures}", decisions, n, c)
    if overdue:
        return CanaryReview("rollback", f"inconclusive at the deadline: {figures}", decisions, n, c)
    return CanaryReview("wait", f"inconclusive so far: {figures}", decisions, n, c)
