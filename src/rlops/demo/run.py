"""One application's demo, start to finish, and the figures it leaves behind.

1. The rule engine serves simulated traffic (with exploration) through the real service,
   writer, log and join on a simulated clock; outcomes arrive with their delays.
2. A bandit and a CQL policy are trained on the log, registered and gated.
3. Both are evaluated off-policy against the rules on held-out logs, and on the scenario
   battery; the simulator's true values stand beside the estimates.
4. The better gated one is served as a canary with decaying exploration inside the trust
   region; the loop's canary review promotes it (or rolls it back).
5. A deliberately broken policy is pushed as a canary; the review rolls it back.

Everything the report draws is returned as plain JSON-ready data.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rlops.apps.spaces import app_spaces
from rlops.demo.config import DemoConfig
from rlops.demo.evaluation import batteries, covers, off_policy, one_step_truth, uplift
from rlops.demo.steps import (
    battery_config,
    best_candidate,
    open_rig,
    push_broken,
    serve,
    served,
    start_canary,
    train_candidates,
    verdict_reached,
)
from rlops.demo.views import AppView, view
from rlops.learn.benchdata import EpsilonMix
from rlops.ope.data import LoggedBandit
from rlops.pipeline.loop_config import DAY
from rlops.pipeline.loop_state import LoopEvent
from rlops.pipeline.retrain import split_holdout
from rlops.pipeline.simulated_production import SimulatedProduction
from rlops.sim.baselines import Policy
from rlops.sim.battery import MetricSummary

Say = Callable[[str], None]


def run_app(config: DemoConfig, out: Path, *, say: Say = print) -> dict[str, Any]:
    """Run one application's demo in ``out`` (emptied first); the figures as JSON data."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    started = time.perf_counter()
    app = config.app
    names: dict[str, str] = {}
    with open_rig(out / "production", config) as rig:
        names[rig.production_version()] = "rules"
        say(
            f"[bold]{app}[/]: the rule engine serves {config.units} units, "
            f"{config.epsilon:.0%} exploration"
        )
        events = serve(rig, config.rules_days, f"{app}: rules serve, outcomes join")
        candidates = train_candidates(rig, config)
        for learner, candidate in candidates.items():
            names[candidate.version] = learner
        spec = rig.loop.reward_spec
        _, holdout = split_holdout(
            rig.log.examples(app=app, reward_spec=spec), config.holdout_fraction
        )
        policies: dict[str, Policy] = {"rules": served(rig, rig.baseline.policy)}
        for learner, candidate in candidates.items():
            policies[learner] = served(rig, rig.registry.load(app, candidate.version).policy)
        say("evaluating off-policy on held-out logs and on the scenario battery")
        estimates = off_policy(app, holdout, policies, resamples=config.bootstrap_resamples)
        truth = one_step_truth(
            app,
            policies,
            EpsilonMix(policies["rules"], config.epsilon),
            units=config.units,
            seeds=config.battery_seeds,
            market=rig.config.market,
            advisor_max_days=config.advisor_max_days,
        )
        battery = batteries(app, policies, battery_config(config), config.scenarios)
        chosen = best_candidate(candidates)
        if chosen is not None:
            learner, candidate = chosen
            reason = (
                f"demo: {learner} passed the gate; off-policy "
                f"{candidate.gate.off_policy.value:+.4f} vs rules "
                f"{candidate.gate.off_policy.reference:+.4f}"
            )
            events.append(start_canary(rig, candidate.version, reason))
            events += serve(
                rig,
                config.canary_days,
                f"{app}: {learner} canary at {config.canary_share:.0%}",
                until=verdict_reached(candidate.version),
            )
        else:  # the gate held: the rules stay; the report says why
            learner, candidate = max(candidates.items(), key=lambda kv: kv[1].gate.off_policy.value)
            for name, c in candidates.items():
                say(f"[yellow]gate refused {name}[/]: {'; '.join(c.gate.failures())}")
        promoted = rig.production_version() == candidate.version
        broken, event = push_broken(rig)
        names[broken] = "broken"
        events.append(event)
        events += serve(
            rig, config.broken_days, f"{app}: broken canary", until=verdict_reached(broken)
        )
        rolled_back = any(e.kind == "rolled_back" and e.version == broken for e in events)
        result = _figures(
            rig, config, view(app), names, events, estimates, truth, battery, holdout, learner
        )
        result["gate"] = {n: c.gate.to_json() for n, c in candidates.items()}
    result.update(
        promoted=promoted,
        promoted_version=candidate.version if promoted else None,
        broken_rolled_back=rolled_back,
        seconds=time.perf_counter() - started,
    )
    return result


def _figures(
    rig: SimulatedProduction,
    config: DemoConfig,
    app_view: AppView,
    names: dict[str, str],
    events: list[LoopEvent],
    estimates: dict[str, Any],
    one_step: dict[str, MetricSummary],
    battery: dict[str, Any],
    holdout: list[Any],
    chosen: str,
) -> dict[str, Any]:
    start = rig.config.start

    def label(arm: str, version: str) -> str:
        return f"{arm}: {names.get(version, version[:8])}"

    timeline: dict[str, dict[str, Any]] = {}
    for (arm, version), truth in sorted(rig.truth().items(), key=lambda kv: kv[1].ts[0]):
        days = np.floor((truth.ts - start) / DAY).astype(int)
        series: dict[str, Any] = {"day": sorted(set(days.tolist()))}
        for s in app_view.timeline:
            values = s.value(truth.rewards, truth.signals)
            weights = s.weight(truth.signals) if s.weight is not None else np.ones_like(values)
            per_day = []
            for d in series["day"]:
                w = weights[days == d]
                per_day.append(float((values[days == d] * w).sum() / w.sum()) if w.sum() else None)
            series[s.name] = per_day
        series["decisions"] = [int((days == d).sum()) for d in series["day"]]
        timeline[label(arm, version)] = series
    battery_json = {name: b.to_json() for name, b in battery.items()}
    uplifts = {
        name: [
            uplift(battery[name], battery["rules"], m, app_view.scenario).to_json()
            for m, _ in app_view.uplift_metrics
        ]
        for name in battery
        if name != "rules"
    }
    true_value = {name: summary.to_json() for name, summary in one_step.items()}
    ope = {
        name: [
            {
                "estimator": e.estimator,
                "value": e.value,
                "low": e.low,
                "high": e.high,
                "ess": e.ess,
                "covers_truth": covers(e, true_value[name]["mean"]),
            }
            for e in ests
        ]
        for name, ests in estimates.items()
    }
    return {
        "app": config.app,
        "config": {
            "units": config.units,
            "rules_days": config.rules_days,
            "epsilon": config.epsilon,
            "kl_bound": config.kl_bound,
            "canary_share": config.canary_share,
            "battery_seeds": list(config.battery_seeds),
            "battery_units": config.battery_units,
        },
        "chosen": chosen,
        "decisions": rig.decisions,
        "examples": rig.log.count_examples(app=config.app),
        "holdout": len(holdout),
        "events": [
            {
                "day": (e.at - start) / DAY,
                "kind": e.kind,
                "version": e.version,
                "policy": names.get(e.version or "", e.version),
                "reason": e.reason,
            }
            for e in events
        ],
        "timeline": timeline,
        "timeline_labels": {s.name: s.label for s in app_view.timeline},
        "uplift_labels": dict(app_view.uplift_metrics),
        "headline": app_view.headline,
        "uplift": uplifts,
        "truth": true_value,
        "scenario": app_view.scenario,
        "off_policy": ope,
        "battery": battery_json,
        "segments": _segments(rig, app_view, holdout, names, chosen),
    }


def _segments(
    rig: SimulatedProduction,
    app_view: AppView,
    holdout: list[Any],
    names: dict[str, str],
    chosen: str,
) -> dict[str, Any]:
    """Each policy's served action distribution per segment, over the held-out contexts."""
    app = rig.config.loop.app
    schema, catalog = app_spaces(app)
    logged = LoggedBandit.from_examples(holdout, schema=schema, action_ids=catalog.ids)
    segments = np.array([app_view.segment(e.features) for e in holdout])
    wanted = {"rules": rig.baseline.policy}
    by_name = {n: v for v, n in names.items()}
    if chosen in by_name:
        wanted[chosen] = rig.registry.load(app, by_name[chosen]).policy
    out: dict[str, Any] = {"actions": list(catalog.ids), "segment_name": app_view.segment_name}
    for name, policy in wanted.items():
        probs = served(rig, policy).probabilities(logged.context, catalog)
        out[name] = {
            str(s): probs[segments == s].mean(axis=0).tolist() for s in sorted(set(segments))
        }
    return out
