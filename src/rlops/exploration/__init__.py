"""Exploration: epsilon and softmax wrappers with decay schedules, and a propensity floor."""

from rlops.exploration.explorer import (
    ExplorationConfig,
    Explorer,
    epsilon_mix,
    tempered,
    with_floor,
)
from rlops.exploration.schedules import Schedule

__all__ = [
    "ExplorationConfig",
    "Explorer",
    "Schedule",
    "epsilon_mix",
    "tempered",
    "with_floor",
]
