"""The demo's steps, shared by both applications: serve, train and gate, canary, drill.

Every step drives the real parts through the production rig
(:class:`~rlops.pipeline.simulated_production.SimulatedProduction`): the service decides
and logs, outcomes arrive when the simulated clock reaches them and are joined, the
registry versions, the loop reviews canaries. Only the decision of *when* to do each
thing is the demo's: the loop's own retraining trigger is switched off, and training,
the choice of candidate and the drill are run here step by step so each can be shown.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from rlops.apps.spaces import app_spaces
from rlops.core.actions import ActionCatalog
from rlops.demo.config import DemoConfig
from rlops.exploration.explorer import ExplorationConfig
from rlops.exploration.schedules import Schedule
from rlops.pipeline.loop_config import DAY, CanaryConfig, LoopConfig
from rlops.pipeline.loop_state import LoopEvent
from rlops.pipeline.retrain import Candidate, retrain
from rlops.pipeline.simulated_production import RigConfig, SimulatedProduction
from rlops.policies.linear import LinearPolicy
from rlops.policies.stack import PolicyStack, SafetyConfig
from rlops.registry.gates import GateConfig
from rlops.sim.baselines import Policy
from rlops.sim.battery import BatteryConfig
from rlops.sim.market_data import MarketSpec

VERDICTS = ("promoted", "rolled_back", "canary_ended")
# The advisor's demo market: a replayed stretch of history long enough for every phase.
ADVISOR_MARKET = MarketSpec(mode="replay", start="2003-03-03", end="2007-10-31")


def loop_config(config: DemoConfig) -> LoopConfig:
    """The loop as the demo runs it: no automatic retraining, the demo's canary."""
    return LoopConfig(
        app=config.app,
        min_new_examples=10**12,  # the demo trains by hand, step by step
        holdout_fraction=config.holdout_fraction,
        # A greedy learned policy is far from deterministic rules in KL; the serving
        # trust region mixes it toward them. The gate's bound refuses wholesale departures.
        gate=GateConfig(kl_bound=3.0, n_resamples=config.bootstrap_resamples),
        battery=battery_config(config, seeds=config.battery_seeds[:1]),
        canary=CanaryConfig(
            share=config.canary_share,
            min_decisions=config.canary_min_decisions,
            min_examples=config.canary_min_examples,
            max_seconds=max(config.canary_days, config.broken_days) * DAY,
        ),
    )


def battery_config(config: DemoConfig, *, seeds: tuple[int, ...] | None = None) -> BatteryConfig:
    return BatteryConfig(
        seeds=seeds if seeds is not None else config.battery_seeds,
        pricing_products=config.battery_units,
        advisor_users=config.battery_units,
        advisor_max_days=config.advisor_max_days,
    )


def safety(config: DemoConfig) -> SafetyConfig:
    """The trust region every arm serves inside; the rules get a 5% floor so it can move."""
    return SafetyConfig(kl_bound=config.kl_bound, baseline_floor=0.05)


def rig_config(config: DemoConfig) -> RigConfig:
    return RigConfig(
        loop=loop_config(config),
        products=config.units,
        users=config.units,
        seed=config.seed,
        exploration=ExplorationConfig(kind="epsilon", schedule=Schedule(start=config.epsilon)),
        safety=safety(config),
        market=ADVISOR_MARKET,
    )


def open_rig(directory: Path, config: DemoConfig) -> SimulatedProduction:
    return SimulatedProduction(directory, rig_config(config))


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<44}"),
        BarColumn(),
        TextColumn("{task.completed:>5.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        transient=False,
    )


def serve(
    rig: SimulatedProduction,
    days: float,
    description: str,
    *,
    until: Callable[[list[LoopEvent]], bool] | None = None,
) -> list[LoopEvent]:
    """Serve ``days`` simulated days a day at a time (or until ``until(events)``)."""
    events: list[LoopEvent] = []
    with progress() as bar:
        task = bar.add_task(description, total=math.ceil(days))
        for _ in range(math.ceil(days)):
            events += rig.advance(1.0)
            bar.advance(task)
            if until is not None and until(events):
                break
    return events


def verdict_reached(version: str) -> Callable[[list[LoopEvent]], bool]:
    return lambda events: any(e.kind in VERDICTS and e.version == version for e in events)


def train_candidates(rig: SimulatedProduction, config: DemoConfig) -> dict[str, Candidate]:
    """Train, register and gate one candidate per learner on everything joined so far."""
    out: dict[str, Candidate] = {}
    loop = rig.config.loop
    with progress() as bar:
        task = bar.add_task(
            "training and gating " + ", ".join(config.learners), total=len(config.learners)
        )
        for learner, settings in config.learners.items():
            out[learner] = retrain(
                replace(loop, learner=learner, learner_config=dict(settings)),
                rig.log,
                rig.registry,
                snapshots=rig.directory / "snapshots",
                now=rig.clock.now(),
                trained_through=None,
            )
            bar.advance(task)
    return out


def best_candidate(candidates: dict[str, Candidate]) -> tuple[str, Candidate] | None:
    """The gate-passing candidate with the highest off-policy estimate, if any passed."""
    passed = [(name, c) for name, c in candidates.items() if c.gate.passed]
    if not passed:
        return None
    return max(passed, key=lambda item: item[1].gate.off_policy.value)


@dataclass(frozen=True, eq=False)
class Served:
    """A policy as production serves it (inside the trust region, without exploration)."""

    stack: PolicyStack

    def probabilities(self, features: np.ndarray, actions: ActionCatalog) -> np.ndarray:
        return self.stack.distribution(features, actions)[0]


def served(rig: SimulatedProduction, policy: Policy) -> Served:
    schema, _ = app_spaces(rig.config.loop.app)
    return Served(PolicyStack(policy, schema, rig.config.safety, baseline=rig.baseline.policy))


def broken_policy(app: str) -> LinearPolicy:
    """A policy that always takes the worst action of ``app``, whatever the context.

    Pricing: the steepest price rise for every visitor; advisor: the aggressive strategy
    for every user, whatever their risk tolerance. A drill for the canary's rollback.
    """
    schema, catalog = app_spaces(app)
    worst = "price+10pct" if app == "pricing" else "aggressive"
    bias = np.where(np.array(catalog.ids) == worst, 1.0, 0.0)
    return LinearPolicy(catalog.ids, np.zeros((len(catalog), schema.dim)), bias)


def push_broken(rig: SimulatedProduction) -> tuple[str, LoopEvent]:
    """Register the broken policy and put it on the canary arm, past the gate."""
    app = rig.config.loop.app
    schema, catalog = app_spaces(app)
    record = rig.registry.register_policy(
        broken_policy(app),
        name=rig.config.loop.policy_name,
        schema=schema,
        catalog=catalog,
        actor="rlops demo",
        training_config={"drill": "always the worst action"},
    )
    reason = "drill: a deliberately broken policy, pushed past the gate"
    return record.version, start_canary(rig, record.version, reason)


def start_canary(rig: SimulatedProduction, version: str, reason: str) -> LoopEvent:
    """Put a gated candidate on the canary arm and have the service serve it at once."""
    event = rig.loop.start_canary(version, reason=reason)
    rig.router.refresh()
    rig.service.experiment_changed()
    for alias in rig.registry.aliases(rig.config.loop.policy_name):
        rig.service.follow(alias)
    return event
