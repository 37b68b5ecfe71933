"""``rlops train`` end to end: snapshot in, verified artifact out, fine-tuning from a parent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rlops.cli import app
from rlops.learn.data import LoggedData
from rlops.learn.simdata import advisor_logs, as_examples
from rlops.policies import load_policy
from rlops.sim.advisor_core import ADVISOR_ACTIONS, ADVISOR_SCHEMA, AdvisorConfig
from rlops.sim.baselines import UniformRandom
from rlops.sim.market_data import MarketSpec
from rlops.store.snapshot import write_snapshot

runner = CliRunner()
MARKET = MarketSpec(start="2013-01-02", end="2014-12-31")


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("snapshots")
    data = advisor_logs(UniformRandom(), AdvisorConfig(n_users=30), MARKET, seed=0, max_days=20)
    first = data.subset(data.ts < data.ts.min() + 10)
    second = data.subset(data.ts >= data.ts.min() + 10)
    old = write_snapshot(as_examples(first, app="advisor"), root / "old")
    new = write_snapshot(as_examples(second, app="advisor"), root / "new")
    return old.path, new.path


def test_a_snapshot_reads_back_as_the_same_training_data(snapshots: tuple[Path, Path]) -> None:
    data = LoggedData.from_snapshot(snapshots[0], ADVISOR_SCHEMA, ADVISOR_ACTIONS)
    assert len(data) == 300
    assert data.snapshot_id is not None
    assert np.all(np.isclose(data.propensities, 1 / len(ADVISOR_ACTIONS)))


def test_train_a_bandit_from_a_snapshot(snapshots: tuple[Path, Path], tmp_path: Path) -> None:
    old, _ = snapshots
    out = tmp_path / "bandit"
    result = runner.invoke(
        app,
        [
            "train",
            "--app",
            "advisor",
            "--learner",
            "bandit",
            "--snapshot",
            str(old),
            "--out",
            str(out),
            "--config",
            json.dumps({"rule": "linucb", "form": "shared", "action_map": "quadratic"}),
        ],
    )
    assert result.exit_code == 0, result.output
    loaded = load_policy(out)
    manifest = loaded.manifest
    assert manifest.family == "bandit"
    assert (
        manifest.snapshot_id
        == LoggedData.from_snapshot(old, ADVISOR_SCHEMA, ADVISOR_ACTIONS).snapshot_id
    )
    assert manifest.training_config["learner"] == "bandit"
    assert manifest.training_config["form"] == "shared"
    assert manifest.evaluation["training"]["rows"] == 300
    assert manifest.reward_spec_hash is not None
    # Fine-tune: the new data, old rows mixed in, warm-started from the parent.
    child = tmp_path / "child"
    result = runner.invoke(
        app,
        [
            "train",
            "--app",
            "advisor",
            "--learner",
            "bandit",
            "--snapshot",
            str(snapshots[1]),
            "--parent",
            str(out),
            "--old-snapshot",
            str(old),
            "--old-fraction",
            "0.5",
            "--out",
            str(child),
            "--config",
            json.dumps({"rule": "linucb", "form": "shared", "action_map": "quadratic"}),
        ],
    )
    assert result.exit_code == 0, result.output
    child_manifest = load_policy(child).manifest
    assert child_manifest.parent_version == manifest.version
    assert child_manifest.evaluation["training"]["rows"] == 600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learner", "astrology"], "--learner"),
        (["--learner", "bandit"], "--snapshot"),
        (["--learner", "bandit", "--config", "{not json"], "--config"),
        (["--learner", "bandit", "--config", "[1]"], "JSON object"),
    ],
)
def test_bad_arguments_fail_cleanly(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--app", "advisor", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "x").exists()


def test_a_bad_learner_config_names_the_field(snapshots: tuple[Path, Path], tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "train",
            "--app",
            "advisor",
            "--learner",
            "bandit",
            "--snapshot",
            str(snapshots[0]),
            "--out",
            str(tmp_path / "x"),
            "--config",
            json.dumps({"rule": "linucb", "alpha": -1}),
        ],
    )
    assert result.exit_code == 2
    assert "alpha" in result.output
    assert not (tmp_path / "x").exists()
