"""The scenario battery on an engine: every (scenario, seed) rollout, here or on Ray actors.

On Ray, a pool of actors is started, each holding the policy and the scenarios (sent
once, through the object store) and the simulators' shared data (the market history is
loaded once per actor, not once per rollout); the rollouts are handed out one at a time
to whichever actor is free. Each rollout draws only from its own seed
(:func:`rlops.sim.rollout.generators`), so where it runs cannot change what it
measures: the Ray battery equals the local one, metric for metric.

The policy and scenarios cross to the actors pickled by Ray. That is inside our own
trust boundary (our process, our cluster); artifacts on disk are still never unpickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlops.core.errors import ValidationError
from rlops.scale.engine import EngineConfig, engine_config, ensure_ray
from rlops.sim.baselines import Policy
from rlops.sim.battery import BatteryConfig, BatteryResult, evaluate, seed_metrics, summarise
from rlops.sim.scenarios import AdvisorScenario, Scenario, scenarios_for


class RolloutWorker:
    """One actor's state: the policy, the scenarios and the config, built once."""

    def __init__(self, policy: Policy, scenarios: Sequence[Scenario], config: BatteryConfig):
        self.policy = policy
        self.scenarios = tuple(scenarios)
        self.config = config
        advisor = [s for s in self.scenarios if isinstance(s, AdvisorScenario)]
        if advisor:
            from rlops.sim.market_data import fitted_garch, history

            history()  # cached for the actor's lifetime: every advisor rollout reads it
            if any(s.market.mode == "garch" for s in advisor):
                fitted_garch()

    def run(self, task: tuple[int, int]) -> tuple[int, int, dict[str, float]]:
        """Scenario ``i`` on the ``j``-th seed; the indices come back with the metrics."""
        i, j = task
        metrics = seed_metrics(self.policy, self.scenarios[i], self.config.seeds[j], self.config)
        return i, j, metrics


def run_battery(
    policy: Policy,
    app: str,
    config: BatteryConfig | None = None,
    *,
    engine: str | EngineConfig = "local",
    scenarios: Sequence[Scenario] | None = None,
    policy_name: str = "candidate",
) -> BatteryResult:
    """:func:`rlops.sim.battery.evaluate` on ``engine``; the same result on either."""
    chosen_engine = engine_config(engine)
    config = config or BatteryConfig()
    if not config.seeds:
        raise ValidationError("the battery needs at least one seed", field="seeds")
    chosen = tuple(scenarios) if scenarios is not None else scenarios_for(app)
    if chosen_engine.kind == "local":
        return evaluate(policy, app, config=config, scenarios=chosen, policy_name=policy_name)
    per_seed = _on_ray(policy, chosen, config, chosen_engine)
    return summarise(app, policy_name, config, chosen, per_seed)


def _on_ray(
    policy: Policy, scenarios: tuple[Scenario, ...], config: BatteryConfig, engine: EngineConfig
) -> list[list[dict[str, float]]]:
    ray = ensure_ray(engine)
    from ray.util import ActorPool

    tasks = [(i, j) for i in range(len(scenarios)) for j in range(len(config.seeds))]
    cpus = int(ray.cluster_resources().get("CPU", 1))
    n_actors = max(1, min(len(tasks), engine.workers or cpus))
    worker = ray.remote(num_cpus=1)(RolloutWorker)
    policy_ref, scenarios_ref = ray.put(policy), ray.put(scenarios)
    actors = [worker.remote(policy_ref, scenarios_ref, config) for _ in range(n_actors)]
    try:
        pool = ActorPool(actors)
        per_seed: list[list[dict[str, float]]] = [[{} for _ in config.seeds] for _ in scenarios]
        done: Any
        for done in pool.map_unordered(lambda actor, task: actor.run.remote(task), tasks):
            i, j, metrics = done
            per_seed[i][j] = metrics
    finally:
        for actor in actors:
            ray.kill(actor)
    return per_seed
