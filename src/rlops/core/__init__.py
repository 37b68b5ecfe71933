"""Records, schemas, clocks and errors: no I/O, no learning code."""

from rlops.core.actions import Action, ActionCatalog
from rlops.core.clock import Clock, ManualClock, RealClock
from rlops.core.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    RlopsError,
    ValidationError,
)
from rlops.core.features import Feature, FeatureSchema, FeatureValue, ResolvedFeatures
from rlops.core.records import Decision, Example, Outcome

__all__ = [
    "Action",
    "ActionCatalog",
    "Clock",
    "ConflictError",
    "Decision",
    "Example",
    "Feature",
    "FeatureSchema",
    "FeatureValue",
    "IntegrityError",
    "ManualClock",
    "NotFoundError",
    "Outcome",
    "RealClock",
    "ResolvedFeatures",
    "RlopsError",
    "ValidationError",
]
