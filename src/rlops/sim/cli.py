"""The bodies of ``rlops simulate`` and ``rlops gate`` (imported only when they run)."""

from __future__ import annotations

import json
from pathlib import Path

from rlops.core.errors import RlopsError
from rlops.scale.battery import run_battery
from rlops.scale.engine import EngineConfig
from rlops.sim.baselines import named_policy
from rlops.sim.battery import BatteryConfig
from rlops.sim.gate import Thresholds, run_gate


def _config(seeds: int) -> BatteryConfig:
    return BatteryConfig(seeds=tuple(range(seeds)))


def simulate_command(
    app: str,
    policy: str,
    seeds: int,
    json_out: Path | None,
    engine: EngineConfig | None = None,
) -> int:
    """Print the battery's table (and write its JSON); 0, or 2 on bad input."""
    try:
        result = run_battery(
            named_policy(app, policy),
            app,
            _config(seeds),
            engine=engine or EngineConfig(),
            policy_name=policy,
        )
    except RlopsError as error:
        print(f"error ({error.code}): {error.message}")
        return 2
    print(result.table())
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_json(), indent=2) + "\n")
        print(f"wrote {json_out}")
    return 0


def gate_command(
    app: str,
    policy: str,
    seeds: int,
    thresholds: Path | None,
    engine: EngineConfig | None = None,
) -> int:
    """Print the gate's report; 0 when every threshold holds, 1 otherwise, 2 on bad input."""
    rules = Thresholds.load(thresholds) if thresholds is not None else Thresholds.default(app)
    if rules.app != app:
        print(f"thresholds are for {rules.app!r}, not {app!r}")
        return 2
    try:
        result = run_gate(
            named_policy(app, policy),
            rules,
            config=_config(seeds),
            policy_name=policy,
            engine=engine or EngineConfig(),
        )
    except RlopsError as error:
        print(f"error ({error.code}): {error.message}")
        return 2
    print(result.candidate.table())
    print(result.report())
    return 0 if result.passed else 1
