"""Scale-out: the scenario battery over Ray actors and learner tuning as Ray Tune trials.

Every entry point takes an engine, ``local`` (this process, no Ray needed) or ``ray``
(the ``rlops[ray]`` extra); the same seeds give the same results on both.
"""

from rlops.scale.battery import run_battery
from rlops.scale.engine import ENGINES, EngineConfig, RayUnavailableError, engine_config
from rlops.scale.space import SearchSpace
from rlops.scale.tune import TuneResult, split_units, tune_offline

__all__ = [
    "ENGINES",
    "EngineConfig",
    "RayUnavailableError",
    "SearchSpace",
    "TuneResult",
    "engine_config",
    "run_battery",
    "split_units",
    "tune_offline",
]
