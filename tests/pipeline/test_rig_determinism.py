"""Seeds everywhere: the production rig run twice on one seed serves, logs and joins the
same thing, and another seed does not. (The demo's CI test once failed because the
service keyed its exploration draws by random event ids: the same seed gave another run.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rlops.exploration.explorer import ExplorationConfig
from rlops.exploration.schedules import Schedule
from rlops.pipeline.simulated_production import RigConfig, SimulatedProduction
from tests.pipeline.helpers import small_loop


def run(directory: Path, seed: int) -> tuple[list[tuple[str, str, float]], np.ndarray, int]:
    config = RigConfig(
        loop=small_loop(min_new_examples=10**9),  # serve and join only
        products=10,
        seed=seed,
        transport="log",
        exploration=ExplorationConfig(kind="epsilon", schedule=Schedule(start=0.3)),
    )
    with SimulatedProduction(directory, config) as rig:
        rig.advance(9.0)  # past the pricing join window (7 days)
        rig.join()
        examples = rig.log.examples(app="pricing", reward_spec=rig.loop.reward_spec)
        logged = [(e.event_id, e.action_id, e.reward) for e in examples]
        rewards = np.concatenate([t.rewards for t in rig.truth().values()])
        return logged, rewards, rig.decisions


def test_the_same_seed_gives_the_same_run_and_another_seed_another(tmp_path: Path) -> None:
    logged, rewards, decisions = run(tmp_path / "a", seed=3)
    again = run(tmp_path / "b", seed=3)
    other = run(tmp_path / "c", seed=4)
    assert decisions > 0 and len(logged) > 0.1 * decisions  # two days out of the window
    assert again[0] == logged
    np.testing.assert_array_equal(again[1], rewards)
    assert other[0] != logged
