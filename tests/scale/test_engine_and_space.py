"""Engine choice, search spaces and the held-out split: no Ray needed, none started.

Ray being absent is simulated by blocking its import (``sys.modules["ray"] = None``);
the embedded path is checked in a fresh interpreter with the same block.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from rlops.cli import app as cli
from rlops.core.errors import ValidationError
from rlops.learn.data import LoggedData
from rlops.learn.simdata import pricing_logs
from rlops.scale import (
    EngineConfig,
    RayUnavailableError,
    SearchSpace,
    engine_config,
    run_battery,
    split_units,
    tune_offline,
)
from rlops.sim.baselines import UniformRandom, named_policy
from rlops.sim.battery import BatteryConfig
from rlops.sim.pricing_core import PricingConfig

TINY = BatteryConfig(seeds=(0,), pricing_products=5)
runner = CliRunner()


@pytest.fixture(scope="module")
def logs() -> LoggedData:
    return pricing_logs(UniformRandom(), PricingConfig(n_products=6), seed=2)


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)


def test_an_unknown_engine_is_refused_naming_the_field(logs: LoggedData) -> None:
    policy = named_policy("pricing", "baseline")
    with pytest.raises(ValidationError, match="unknown engine 'spark'") as caught:
        run_battery(policy, "pricing", TINY, engine="spark")
    assert caught.value.field == "engine"
    with pytest.raises(ValidationError) as caught:
        tune_offline("bandit", logs, {"epsilon": [0.1]}, engine="dask")
    assert caught.value.field == "engine"
    with pytest.raises(ValidationError) as caught:
        EngineConfig(kind="local", address="ray://head:10001")
    assert caught.value.field == "address"
    with pytest.raises(ValidationError) as caught:
        EngineConfig(kind="ray", workers=0)
    assert caught.value.field == "workers"
    assert engine_config("ray", address="auto") == EngineConfig(kind="ray", address="auto")


def test_without_ray_the_ray_engine_names_the_extra(no_ray: None, logs: LoggedData) -> None:
    policy = named_policy("pricing", "baseline")
    with pytest.raises(RayUnavailableError, match=r"rlops\[ray\]") as caught:
        run_battery(policy, "pricing", TINY, engine="ray")
    assert caught.value.field == "engine" and caught.value.code == "ray_unavailable"
    with pytest.raises(RayUnavailableError, match=r"rlops\[ray\]"):
        tune_offline("bandit", logs, {"epsilon": [0.1]}, engine="ray")
    # The local engine never touches Ray.
    assert run_battery(policy, "pricing", TINY).seeds == (0,)


@pytest.mark.parametrize("command", ["simulate", "gate"])
def test_the_cli_reports_a_missing_ray_and_exits_2(no_ray: None, command: str) -> None:
    result = runner.invoke(cli, [command, "--app", "pricing", "--seeds", "1", "--engine", "ray"])
    assert result.exit_code == 2
    assert "rlops[ray]" in result.output


def test_the_cli_refuses_an_unknown_engine() -> None:
    result = runner.invoke(cli, ["simulate", "--app", "pricing", "--engine", "spark"])
    assert result.exit_code == 2
    assert "unknown engine 'spark'" in result.output


def test_rlops_imports_and_runs_locally_without_ray() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import rlops, rlops.cli, rlops.scale\n"
        "from rlops.scale import run_battery\n"
        "from rlops.sim.baselines import named_policy\n"
        "from rlops.sim.battery import BatteryConfig\n"
        "r = run_battery(named_policy('pricing', 'baseline'), 'pricing',\n"
        "                BatteryConfig(seeds=(0,), pricing_products=3))\n"
        "print(len(r.scenarios), 'ray' in sys.modules and sys.modules['ray'] is not None)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["5", "False"]


@pytest.mark.parametrize(
    ("space", "field"),
    [
        ({}, "space"),
        ({"epsilon": []}, "space.epsilon"),
        ({"epsilon": "0.1"}, "space.epsilon"),
        ({"epsilon": {"low": 0.5, "high": 0.1}}, "space.epsilon"),
        ({"alpha": {"low": 0.0, "high": 1.0, "log": True}}, "space.alpha"),
        ({"alpha": {"low": 0.1, "high": 1.0, "step": 2}}, "space.alpha"),
        ({"alpha": {"low": "a", "high": 1.0}}, "space.alpha"),
        ({"epsilon": [0.1, 2.0]}, "space.epsilon"),
        ({"no_such_setting": [1]}, "space.config"),
        ({"alpha": ["high"]}, "space"),
        ({"seed": [1, 2]}, "space.seed"),
        ({"alpha": {"low": 0.1, "high": 1.0}}, "num_samples"),
    ],
)
def test_a_bad_space_is_refused_before_anything_trains(
    logs: LoggedData, space: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        tune_offline("bandit", logs, space)
    assert caught.value.field == field, caught.value.message


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"learner": "ppo"}, "learner"),
        ({"estimator": "ips"}, "estimator"),
        ({"holdout": 1.0}, "holdout"),
        ({"num_samples": 0}, "num_samples"),
    ],
)
def test_bad_tuning_settings_are_refused(
    logs: LoggedData, kwargs: dict[str, Any], field: str
) -> None:
    settings: dict[str, Any] = {"learner": "bandit", **kwargs}
    learner = settings.pop("learner")
    with pytest.raises(ValidationError) as caught:
        tune_offline(learner, logs, {"epsilon": [0.1]}, **settings)
    assert caught.value.field == field


def test_candidates_are_the_grid_or_seeded_draws_within_bounds() -> None:
    space = SearchSpace.from_json(
        {
            "rule": ["linucb", "epsilon_greedy"],
            "alpha": {"low": 0.01, "high": 100.0, "log": True},
            "thompson_samples": {"low": 10, "high": 20, "integer": True},
        }
    )
    draws = space.candidates(200, seed=3)
    assert draws == space.candidates(200, seed=3)
    assert draws != space.candidates(200, seed=4)
    alphas = np.array([d["alpha"] for d in draws])
    assert alphas.min() >= 0.01 and alphas.max() <= 100.0
    # Log-uniform: about half the draws fall below the geometric middle, 1.
    assert 0.35 < np.mean(alphas < 1.0) < 0.65
    samples = {d["thompson_samples"] for d in draws}
    assert samples <= set(range(10, 21)) and all(isinstance(s, int) for s in samples)
    assert {d["rule"] for d in draws} == {"linucb", "epsilon_greedy"}
    grid = SearchSpace.from_json({"a": [1, 2], "b": ["x", "y", "z"]}).candidates()
    assert grid[:2] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}] and len(grid) == 6
    assert json.loads(json.dumps(draws)) == draws


def test_the_held_out_split_keeps_units_whole_and_is_seeded(logs: LoggedData) -> None:
    train, held = split_units(logs, holdout=0.3, seed=5)
    assert len(train) + len(held) == len(logs)
    assert not set(train.unit_ids) & set(held.unit_ids)
    assert len(set(held.unit_ids)) == 2  # 30% of 6 products
    again, _ = split_units(logs, holdout=0.3, seed=5)
    assert np.array_equal(again.unit_ids, train.unit_ids)
    other, _ = split_units(logs, holdout=0.3, seed=6)
    assert set(other.unit_ids) != set(train.unit_ids)
