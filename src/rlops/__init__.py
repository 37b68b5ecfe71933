"""rlops: run reinforcement-learning decision agents in production.

The core records live in :mod:`rlops.core`; reward functions and the delayed-reward
join in :mod:`rlops.rewards`; logs and snapshots in :mod:`rlops.store`.
"""

from rlops.core import (
    Action,
    ActionCatalog,
    Clock,
    Decision,
    Example,
    Feature,
    FeatureSchema,
    ManualClock,
    Outcome,
    RealClock,
    RlopsError,
    ValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "Action",
    "ActionCatalog",
    "Clock",
    "Decision",
    "Example",
    "Feature",
    "FeatureSchema",
    "ManualClock",
    "Outcome",
    "RealClock",
    "RlopsError",
    "ValidationError",
    "__version__",
]
