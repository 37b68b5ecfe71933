"""The bodies of ``rlops simulate`` and ``rlops gate`` (imported only when they run)."""

from __future__ import annotations

import json
from pathlib import Path

from rlops.sim.baselines import named_policy
from rlops.sim.battery import BatteryConfig, evaluate
from rlops.sim.gate import Thresholds, run_gate


def _config(seeds: int) -> BatteryConfig:
    return BatteryConfig(seeds=tuple(range(seeds)))


def simulate_command(app: str, policy: str, seeds: int, json_out: Path | None) -> None:
    result = evaluate(named_policy(app, policy), app, config=_config(seeds), policy_name=policy)
    print(result.table())
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_json(), indent=2) + "\n")
        print(f"wrote {json_out}")


def gate_command(app: str, policy: str, seeds: int, thresholds: Path | None) -> int:
    """Print the gate's report; 0 when every threshold holds, 1 otherwise."""
    rules = Thresholds.load(thresholds) if thresholds is not None else Thresholds.default(app)
    if rules.app != app:
        print(f"thresholds are for {rules.app!r}, not {app!r}")
        return 2
    result = run_gate(named_policy(app, policy), rules, config=_config(seeds), policy_name=policy)
    print(result.candidate.table())
    print(result.report())
    return 0 if result.passed else 1
