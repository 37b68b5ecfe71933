"""Reward functions (versioned, hashed) and the delayed-reward join."""

from rlops.rewards.join import (
    AGGREGATIONS,
    SECONDS_PER_DAY,
    Aggregation,
    JoinConfig,
    aggregate_signals,
    join_decision,
    rescore,
    window_closed,
)
from rlops.rewards.seeds import advisor_reward, advisor_spec, pricing_reward, pricing_spec
from rlops.rewards.spec import RewardFunction, RewardResult, RewardSpec, RewardTerm

__all__ = [
    "AGGREGATIONS",
    "SECONDS_PER_DAY",
    "Aggregation",
    "JoinConfig",
    "RewardFunction",
    "RewardResult",
    "RewardSpec",
    "RewardTerm",
    "advisor_reward",
    "advisor_spec",
    "aggregate_signals",
    "join_decision",
    "pricing_reward",
    "pricing_spec",
    "rescore",
    "window_closed",
]
