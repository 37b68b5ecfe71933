"""Safety: action masks and the KL trust region to a baseline policy."""

from rlops.safety.masks import (
    ActionMask,
    ChangeLedger,
    ContextRule,
    FlickerLimit,
    PriceBand,
    StaticMask,
    mask_from_json,
)
from rlops.safety.trust_region import TrustRegionMix, trust_region_mix

__all__ = [
    "ActionMask",
    "ChangeLedger",
    "ContextRule",
    "FlickerLimit",
    "PriceBand",
    "StaticMask",
    "TrustRegionMix",
    "mask_from_json",
    "trust_region_mix",
]
