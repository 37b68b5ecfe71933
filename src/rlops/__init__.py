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
from rlops.sim import register_envs

__version__ = "0.1.0"

# rlops/Pricing-v0 and rlops/Advisor-v0, by entry-point string: the envs load on make().
register_envs()

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
