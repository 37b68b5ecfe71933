"""The reference applications' feature schema, action catalog and baseline rule engine.

One place for serving, training and the command line to look them up by name, importing
only the simulator modules that define them (no training code, no torch).
"""

from __future__ import annotations

from typing import Any

from rlops.core.actions import ActionCatalog
from rlops.core.errors import ValidationError
from rlops.core.features import FeatureSchema

APPS = ("pricing", "advisor")


def _unknown(app: str) -> ValidationError:
    return ValidationError(f"unknown app {app!r}; known: {', '.join(APPS)}", field="app")


def app_spaces(app: str) -> tuple[FeatureSchema, ActionCatalog]:
    """The feature schema and action catalog of a reference application."""
    if app == "pricing":
        from rlops.sim.pricing_core import PRICING_ACTIONS, PRICING_SCHEMA

        return PRICING_SCHEMA, PRICING_ACTIONS
    if app == "advisor":
        from rlops.sim.advisor_core import ADVISOR_ACTIONS, ADVISOR_SCHEMA

        return ADVISOR_SCHEMA, ADVISOR_ACTIONS
    raise _unknown(app)


def app_schema(app: str) -> FeatureSchema:
    return app_spaces(app)[0]


def app_rules(app: str) -> Any:
    """The application's baseline rule engine (the fallback and first production)."""
    schema, _ = app_spaces(app)
    from rlops.sim.baselines import AdvisorRules, PricingRules

    return PricingRules(schema=schema) if app == "pricing" else AdvisorRules(schema=schema)
