"""The embedded-default loop, end to end, on a small synthetic pricing market.

Uniform-random prices are logged as decisions with their propensities; sales, abandoned
carts and clearance results arrive minutes to days later (a manual clock runs a week in
seconds), including retried deliveries, an outcome for an unknown event and outcomes
after their window. The join turns them into examples, a snapshot freezes them, and
each price's value is read off the log by inverse propensity weighting.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from rlops.apps.defaults import HOUR, pricing_join_config
from rlops.core.clock import ManualClock
from rlops.core.ids import new_event_id
from rlops.core.records import Decision, Outcome
from rlops.pipeline.join_worker import JoinWorker
from rlops.store import open_log
from rlops.store.snapshot import write_snapshot

ACTIONS = ("m10", "m5", "keep", "p5", "p10")
MULTIPLIERS = np.array([0.90, 0.95, 1.00, 1.05, 1.10])
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def run_demo(*, out: Path, n_decisions: int = 20_000, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "log.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    log = open_log(db)
    clock = ManualClock(START)
    worker = JoinWorker(log, [pricing_join_config()], clock=clock)
    console = Console()

    days, per_day = 14, max(1, n_decisions // 14)
    late_outcomes: list[Outcome] = []
    for day in track(range(days), description="simulating two weeks of traffic"):
        ts = START + day * 86_400.0 + np.sort(rng.uniform(0, 86_400.0, per_day))
        actions = rng.integers(0, len(ACTIONS), per_day)
        inventory = rng.uniform(0, 200, per_day)
        decisions = [
            Decision(
                event_id=new_event_id(float(t)),
                ts=float(t),
                app="pricing",
                unit_id=f"sku-{rng.integers(0, 500)}",
                arm="control",
                policy_version="uniform",
                features={"inventory": float(inv), "hour": int((t % 86_400) // 3600)},
                action_ids=ACTIONS,
                action_id=ACTIONS[a],
                propensity=1.0 / len(ACTIONS),
            )
            for t, a, inv in zip(ts, actions, inventory, strict=True)
        ]
        log.append_decisions(decisions)
        outcomes: list[Outcome] = []
        for d, a in zip(decisions, actions, strict=True):
            p_buy = 1.0 / (1.0 + np.exp(12.0 * (MULTIPLIERS[a] - 1.0) + 1.0))
            delay = float(rng.exponential(600.0))
            if rng.random() < p_buy:
                margin = 0.3 + (MULTIPLIERS[a] - 1.0)
                outcomes.append(
                    Outcome(
                        f"{d.event_id}-sale",
                        d.event_id,
                        d.ts + delay,
                        {"converted": 1, "margin_rate": margin},
                    )
                )
            elif rng.random() < 0.3 * MULTIPLIERS[a]:
                outcomes.append(
                    Outcome(f"{d.event_id}-cart", d.event_id, d.ts + delay, {"abandoned_cart": 1})
                )
            if float(d.features["inventory"]) < 20 and rng.random() < 0.5:
                late_outcomes.append(
                    Outcome(
                        f"{d.event_id}-clear", d.event_id, d.ts + 7 * 86_400.0, {"clearance_met": 1}
                    )
                )
        log.append_outcomes(outcomes)
        log.append_outcomes(outcomes[: len(outcomes) // 20])  # retried deliveries
        clock.set(START + (day + 1) * 86_400.0)
        due = [o for o in late_outcomes if o.ts <= clock.now()]
        late_outcomes = [o for o in late_outcomes if o.ts > clock.now()]
        log.append_outcomes(due)
        worker.run_once()
    log.append_outcomes([Outcome("stray", "no-such-event", clock.now(), {"converted": 1})])
    clock.advance(8 * 86_400.0)
    log.append_outcomes(late_outcomes)
    worker.run_once()
    log.append_outcomes(
        [
            Outcome(f"{d.event_id}-late", d.event_id, clock.now(), {"price_changes": 1})
            for d in log.decisions(limit=25)
        ]
    )
    worker.run_once()

    examples = log.examples(app="pricing")
    snapshot = write_snapshot(examples, out / "snapshots")
    stats = log.stats()
    log.close()

    rewards = np.array([e.reward for e in examples])
    chosen = np.array([ACTIONS.index(e.action_id) for e in examples])
    values = {a: float(rewards[chosen == i].mean()) for i, a in enumerate(ACTIONS)}
    table = Table(title="rlops demo: the delayed-reward pipeline on a synthetic pricing market")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("decisions logged", f"{stats.decisions:,}")
    for status, count in stats.outcomes.items():
        table.add_row(f"outcomes {status}", f"{count:,}")
    table.add_row("duplicate outcomes ignored", f"{stats.duplicate_outcomes:,}")
    table.add_row("examples (current)", f"{stats.examples_current:,}")
    table.add_row("  with default reward", f"{stats.examples_defaulted:,}")
    table.add_row("  late revisions", f"{stats.examples_late:,}")
    table.add_row("snapshot", snapshot.content_id)
    for action, value in values.items():
        table.add_row(f"value of always '{action}' (IPS)", f"{value:+.4f}")
    console.print(table)
    console.print(f"log: {db}   snapshot: {snapshot.path}   sale window: {HOUR:.0f} s")
    return values
