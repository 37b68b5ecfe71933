"""How much each demo simulates, as one frozen config per application.

The full settings are what ``make demo`` runs (measured to finish both applications in
well under ten minutes on two cores); :func:`quick` shrinks every phase for the CI test,
keeping every step of the story (rules, training, evaluation, canary, promotion, the
broken canary and its rollback) so the test exercises what the demo shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rlops.core.errors import ValidationError

APPS = ("pricing", "advisor")


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """One application's demo.

    ``rules_days``: simulated days the rule engine serves (with ``epsilon`` exploration)
    before anything is trained. ``canary_days``/``broken_days``: the most simulated days
    each canary may take to reach its verdict. ``kl_bound``: the serving trust region to
    the rules, nats per context. ``battery_seeds``: fresh worlds on which the simulator's
    true values are measured (never the rig's own seed). ``holdout_fraction``: the newest
    share of the log kept from training for the off-policy estimates; pricing demand runs
    in weekly cycles, so the demo holds out the last whole week (21 days served, the
    last 7 still in their join window, 7 trained on, 7 held out).
    """

    app: str
    seed: int = 1
    units: int = 40
    rules_days: float = 14.0
    canary_days: float = 21.0
    broken_days: float = 21.0
    epsilon: float = 0.3
    kl_bound: float = 1.0
    canary_share: float = 0.1
    canary_min_decisions: int = 1000
    canary_min_examples: int = 800
    learners: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    battery_seeds: tuple[int, ...] = (200, 201, 202)
    battery_units: int = 40
    advisor_max_days: int | None = None
    bootstrap_resamples: int = 500
    holdout_fraction: float = 0.5
    scenarios: tuple[str, ...] | None = None  # battery scenarios shown (None: all)

    def __post_init__(self) -> None:
        if self.app not in APPS:
            raise ValidationError(f"no demo for app {self.app!r}; try {APPS}", field="app")
        if self.units < 2 or self.rules_days <= 0 or self.canary_days <= 0:
            raise ValidationError("units >= 2 and positive day counts", field="units")
        if not 0.0 <= self.epsilon < 1.0:
            raise ValidationError("epsilon must lie in [0, 1)", field="epsilon")
        if not self.battery_seeds:
            raise ValidationError("the battery needs at least one seed", field="battery_seeds")


def pricing_config() -> DemoConfig:
    return DemoConfig(
        app="pricing",
        units=40,
        rules_days=21.0,
        canary_days=21.0,
        broken_days=14.0,
        learners={
            "bandit": {},
            "cql": {"steps": 1500, "gamma": 0.9, "alpha": 0.1},
        },
    )


def advisor_config() -> DemoConfig:
    return DemoConfig(
        app="advisor",
        units=200,
        rules_days=75.0,
        canary_days=90.0,
        broken_days=90.0,
        canary_share=0.2,
        canary_min_decisions=1000,
        canary_min_examples=800,
        learners={
            "bandit": {},
            "cql": {"steps": 1500, "gamma": 0.9, "alpha": 0.1},
        },
        battery_units=50,
        advisor_max_days=60,
    )


def default_config(app: str) -> DemoConfig:
    if app == "pricing":
        return pricing_config()
    if app == "advisor":
        return advisor_config()
    raise ValidationError(f"no demo for app {app!r}; try {APPS}", field="app")


def quick(config: DemoConfig) -> DemoConfig:
    """The same story, shorter: for the CI test."""
    learners = {
        name: ({**settings, "steps": 300} if name == "cql" else dict(settings))
        for name, settings in config.learners.items()
    }
    return replace(
        config,
        rules_days=config.rules_days * 0.6,
        battery_seeds=config.battery_seeds[:2],
        scenarios=("normal",) if config.app == "pricing" else ("bull_2003_2007",),
        battery_units=min(config.battery_units, 20),
        advisor_max_days=40,
        learners=learners,
        bootstrap_resamples=200,
    )
