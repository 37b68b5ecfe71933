"""``LoopConfig.from_json`` and ``rlops loop --once`` on a tiny setup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rlops.core.errors import ValidationError
from rlops.pipeline.loop_config import LoopConfig
from rlops.serving.experiments import load_experiment

runner = CliRunner()


def test_a_full_config_round_trips_from_json() -> None:
    config = LoopConfig.from_json(
        {
            "app": "pricing",
            "learner": "bandit",
            "learner_config": {"rule": "greedy"},
            "mode": "finetune",
            "min_new_examples": 500,
            "schedule_seconds": 3600,
            "engine": "ray",
            "thresholds": "thresholds.json",
            "gate": {"kl_bound": 2.0, "n_resamples": 100},
            "battery": {"seeds": [7, 8], "pricing_products": 30},
            "canary": {
                "share": 0.2,
                "min_examples": 50,
                "exploration": {"kind": "epsilon", "schedule": {"start": 0.1}},
            },
        }
    )
    assert config.policy_name == "pricing" and config.engine == "ray"
    assert config.thresholds == Path("thresholds.json")
    assert config.gate.kl_bound == 2.0 and config.battery.seeds == (7, 8)
    assert config.canary.share == 0.2 and config.canary.min_examples == 50
    assert config.canary.exploration is not None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"retrain_every": 5}, "retrain_every"),  # unknown top-level key
        ({"canary": {"shares": 0.2}}, "canary.shares"),  # unknown nested keys, named
        ({"gate": {"kl": 1.0}}, "gate.kl"),
        ({"battery": {"products": 10}}, "battery.products"),
        ({"canary": 0.2}, "canary"),  # a section that is not an object
        ({"app": "chess"}, "app"),
        ({"mode": "online"}, "mode"),
        ({"engine": "spark"}, "engine"),
        ({"min_new_examples": 0}, "min_new_examples"),
        ({"old_fraction": 1.0}, "old_fraction"),
        ({"holdout_fraction": 0.0}, "holdout_fraction"),
        ({"schedule_seconds": -1}, "schedule_seconds"),
        ({"schedule_seconds": True}, "schedule_seconds"),
        ({"history_seconds": float("inf")}, "history_seconds"),
        ({"canary": {"share": 1.0}}, "canary.share"),
        ({"canary": {"level": 0.0}}, "canary.level"),
        ({"canary": {"margin": -0.1}}, "canary.margin"),
        ({"canary": {"max_seconds": 0}}, "canary.max_seconds"),
        ({"canary": {"min_examples": 1}}, "canary"),
        ({"gate": {"kl_bound": -1.0}}, "kl_bound"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        LoopConfig.from_json({"app": "pricing", **changes})
    assert caught.value.field == field


def test_a_config_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        LoopConfig.from_json([("app", "pricing")])  # type: ignore[arg-type]  # the point
    assert caught.value.field == "config"


def cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    from rlops.cli import app

    result = runner.invoke(
        app,
        [
            "loop",
            "--app",
            "pricing",
            "--log",
            f"sqlite:///{tmp_path / 'log.db'}",
            "--registry",
            str(tmp_path / "registry"),
            "--experiment",
            str(tmp_path / "experiment.json"),
            "--state",
            str(tmp_path / "loop"),
            *args,
        ],
    )
    return result.exit_code, result.stdout, result.stderr


def test_loop_once_on_an_empty_log_has_nothing_to_do(tmp_path: Path) -> None:
    code, out, _ = cli(tmp_path, "--once", "--min-new-examples", "5")
    assert code == 0, out
    assert out.strip() == "nothing to do: 0 new examples"
    # The experiment file the servers follow now exists, with the canary arm idle.
    assert load_experiment(tmp_path / "experiment.json").arm("canary").share == 0.0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"canary": {"share": 2}}, "canary share must lie in (0, 1)"),
        ({"retrain_every": 5}, "unknown loop settings ['retrain_every']"),
        ("{not json", "Expecting property name"),
    ],
)
def test_loop_with_a_bad_config_exits_2_with_the_message(
    tmp_path: Path, config: object, message: str
) -> None:
    path = tmp_path / "loop.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    code, out, err = cli(tmp_path, "--once", "--config", str(path))
    assert code == 2
    assert message in err and out == ""
    assert not (tmp_path / "experiment.json").exists()  # nothing was touched


def test_loop_with_a_bad_engine_exits_2(tmp_path: Path) -> None:
    code, _, err = cli(tmp_path, "--once", "--engine", "spark")
    assert code == 2 and "engine must be local or ray" in err
