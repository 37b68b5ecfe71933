"""Issue 9's done-when: a worse candidate never reaches production.

Through the whole rig (the pricing market served by the real service, the log transport,
the delayed-reward join, the loop on a simulated clock), a bad candidate is stopped
twice over: a trained one at the gate, before it serves anyone, and a hand-placed one on
the canary, once its live rewards show it is worse. Small market, tiny battery.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rlops.exploration.explorer import ExplorationConfig
from rlops.exploration.schedules import Schedule
from rlops.pipeline.loop_config import LoopConfig
from rlops.pipeline.simulated_production import RigConfig, SimulatedProduction
from rlops.scale import battery as scale_battery
from rlops.sim.baselines import PricingRules
from rlops.sim.battery import evaluate
from rlops.sim.pricing_core import PRICING_SCHEMA
from tests.pipeline.helpers import SMALL_BATTERY, register_highest_price, small_loop

pytestmark = pytest.mark.slow

# A bandit that picks uniformly at random: it cannot price better than the rules.
UNIFORM_BANDIT = {"rule": "epsilon_greedy", "epsilon": 1.0}


def rig(directory: Path, loop: LoopConfig) -> SimulatedProduction:
    return SimulatedProduction(
        directory,
        RigConfig(
            loop=loop,
            products=20,
            seed=1,
            transport="log",
            exploration=ExplorationConfig(kind="epsilon", schedule=Schedule(start=0.3)),
        ),
    )


def canary_share(production: SimulatedProduction) -> float:
    return production.loop.router.experiment.arm("canary").share


def normal_reward(policy: Any) -> float:
    return evaluate(policy, "pricing", config=SMALL_BATTERY).metric("normal", "reward").mean


def test_a_worse_trained_candidate_is_stopped_at_the_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # engine="ray" must reach the battery; the spy runs it here (starting Ray is slow).
    engines: list[object] = []
    real = scale_battery.run_battery

    def spy(*args: Any, engine: Any = "local", **kw: Any) -> Any:
        engines.append(engine)
        return real(*args, engine="local", **kw)

    monkeypatch.setattr(scale_battery, "run_battery", spy)
    loop = small_loop(learner="bandit", learner_config=UNIFORM_BANDIT, engine="ray")
    with rig(tmp_path, loop) as production:
        rules = production.production_version()
        events = production.advance(7.5)  # the pricing join waits 7 days for the clearance
        kinds = [e.kind for e in events]
        assert kinds == ["triggered", "gate_failed"], kinds
        failed = events[1]
        assert failed.version is not None
        assert failed.details["failures"] and failed.details["gate_passed"] is False
        assert "battery: FAIL" in failed.reason
        assert failed.reason == "; ".join(failed.details["failures"])
        assert engines == ["ray", "ray"]  # the candidate's battery and the rules'
        # It never served: production unchanged, the canary arm still at 0, no alias.
        assert production.production_version() == rules
        assert canary_share(production) == 0.0
        assert production.registry.alias("pricing", "canary") is None
        assert {version for _, version in production.truth()} == {rules}
        gate = production.registry.gate("pricing", failed.version)
        assert gate is not None and not gate.passed and gate.against_version == rules
        candidate = production.registry.load("pricing", failed.version).policy
    # And it really is worse than the rules on the battery.
    assert normal_reward(candidate) < normal_reward(PricingRules(PRICING_SCHEMA))


def test_a_worse_policy_on_the_canary_is_rolled_back_on_its_rewards(tmp_path: Path) -> None:
    # No retraining in this run: the threshold is out of reach.
    with rig(tmp_path, small_loop(min_new_examples=10**9)) as production:
        rules = production.production_version()
        bad = register_highest_price(production.registry)
        started = production.loop.start_canary(bad, reason="operator: a hand-written pricer")
        production.review()  # the service adopts the new shares
        assert canary_share(production) == pytest.approx(0.3)
        events = production.advance(10)
        kinds = [e.kind for e in events]
        assert kinds == ["rolled_back"], kinds
        [rolled] = events
        assert rolled.version == bad and rolled.reason.startswith("worse than production")
        comparison = rolled.details["comparison"]
        assert comparison["high"] < 0.0
        assert f"[{comparison['low']:+.4g}, {comparison['high']:+.4g}]" in rolled.reason
        assert rolled.at > started.at + 7 * 86_400  # only once its rewards had joined
        # Production never moved; the canary stopped serving.
        assert production.production_version() == rules
        assert [e.to_version for e in production.registry.history("pricing", "production")] == [
            rules
        ]
        assert canary_share(production) == 0.0
        truth = production.truth()  # the simulator agrees it was worse
        assert truth[("canary", bad)].mean < truth[("production", rules)].mean
        served = len(truth[("canary", bad)].rewards)
        production.advance(1)
        assert len(production.truth()[("canary", bad)].rewards) == served  # none after
