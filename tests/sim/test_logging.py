"""Simulated runs as production records, and through the real decision log and join."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from rlops.core import Decision, Outcome
from rlops.rewards import join_decision
from rlops.sim.advisor_core import AdvisorConfig
from rlops.sim.baselines import UniformRandom, named_policy
from rlops.sim.logging import (
    advisor_records,
    features_by_name,
    join_config,
    pricing_records,
    write_records,
)
from rlops.sim.market_data import MarketSpec
from rlops.sim.pricing_core import PRICING_SCHEMA, PricingConfig
from rlops.sim.rollout import advisor_run, pricing_run
from rlops.sim.vector_reward import vector_reward

SHORT = PricingConfig(n_products=3, clearance_window_hours=6.0, clearance_target=3)
START = 1_700_000_000.0


class ListSink:
    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.outcomes: list[Outcome] = []

    def append_decisions(self, decisions: list[Decision]) -> None:
        self.decisions.extend(decisions)

    def append_outcomes(self, outcomes: list[Outcome]) -> None:
        self.outcomes.extend(outcomes)


def _pricing() -> tuple[list[Decision], list[Outcome], list[float]]:
    transitions = list(pricing_run(UniformRandom(), SHORT, seed=0, windows=1))
    steps = [t.pricing for t in transitions if t.pricing is not None]
    reward = join_config("pricing").reward
    rewards = [float(r) for step in steps for r in vector_reward(reward, step.signals)]
    decisions, outcomes = pricing_records(transitions, run_id="run1", start_ts=START)
    return decisions, outcomes, rewards


def test_features_round_trip_through_the_schema() -> None:
    row = PRICING_SCHEMA.vector({"segment": "premium", "recent_views": 3, "weekend": True})
    assert np.array_equal(PRICING_SCHEMA.vector(features_by_name(PRICING_SCHEMA, row)), row)


def test_pricing_run_joins_to_the_simulator_rewards() -> None:
    decisions, outcomes, rewards = _pricing()
    assert len(decisions) == len(rewards)
    assert all(d.ts >= START for d in decisions)
    by_event = {
        k: list(g)
        for k, g in itertools.groupby(
            sorted(outcomes, key=lambda o: o.event_id), key=lambda o: o.event_id
        )
    }
    config = join_config("pricing")
    joined = [
        join_decision(d, by_event[d.event_id], config, joined_at=START + 1e6).reward
        for d in decisions
    ]
    assert joined == pytest.approx(rewards, abs=1e-12)
    clearance = [o for o in outcomes if "clearance_met" in o.signals]
    assert len(clearance) >= SHORT.n_products
    assert all(set(o.signals) == {"clearance_met"} for o in clearance)


def test_advisor_records_carry_window_signals_and_dates() -> None:
    market = MarketSpec(start="2010-05-03", end="2010-05-07")
    transitions = list(
        advisor_run(named_policy("advisor", "baseline"), AdvisorConfig(n_users=4), market, seed=0)
    )
    decisions, outcomes = advisor_records(transitions, run_id="adv")
    assert len(decisions) == len(outcomes) == 5 * 4
    assert decisions[0].ts == 1272844800.0  # 2010-05-03 00:00 UTC
    assert all(o.ts - d.ts > 30 * 86400 for d, o in zip(decisions, outcomes, strict=True))
    sink = ListSink()
    write_records(sink, decisions, outcomes, batch_size=7)
    assert sink.decisions == decisions
    assert sink.outcomes == outcomes


def test_simulated_traffic_through_the_real_log_and_join(tmp_path: Path) -> None:
    from rlops import store
    from rlops.core import ManualClock
    from rlops.pipeline import join_worker

    decisions, outcomes, rewards = _pricing()
    log = store.open_log(f"sqlite:///{tmp_path / 'sim.db'}")
    write_records(log, decisions, outcomes)
    clock = ManualClock(max(o.ts for o in outcomes) + 2 * 86_400)
    config = join_config("pricing")
    join_worker.JoinWorker(log, {"pricing": config}, clock=clock).run_once()
    examples = {
        e.event_id: e.reward for e in log.examples(app="pricing", reward_spec=config.reward.hash)
    }
    assert [examples[d.event_id] for d in decisions] == pytest.approx(rewards, abs=1e-12)
