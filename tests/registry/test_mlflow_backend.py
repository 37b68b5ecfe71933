"""The MLflow mirror against a local MLflow store (SQLite) that the test creates.

``make test`` installs the ``mlflow`` extra, so under CI a missing MLflow fails here
instead of skipping.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlops.policies import save_policy
from rlops.registry.records import PRODUCTION
from rlops.registry.registry import Registry
from tests.registry.conftest import CATALOG, NAME, SCHEMA, fixed_policy

try:
    import mlflow  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("the mlflow extra is not installed", allow_module_level=True)

from rlops.registry.mlflow_backend import VERSION_TAG, MlflowMirror


@pytest.fixture(scope="module")
def mirror() -> Iterator[MlflowMirror]:
    # MLflow migrates a new store through its whole schema history, one commit per step:
    # on tmpfs that costs CPU only, on disk it also costs an fsync per step.
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as where:
        yield MlflowMirror(f"sqlite:///{where}/mlflow.db", artifact_location=f"{where}/artifacts")


def _artifact(tmp_path: Path, action: int) -> Path:
    directory = tmp_path / f"a{action}"
    save_policy(
        directory,
        fixed_policy(action),
        name=NAME,
        schema=SCHEMA,
        catalog=CATALOG,
        training_config={"learner": "cql", "optim": {"lr": 0.001}, "seed": action},
        evaluation={"dr": {"value": 0.25, "low": 0.2}, "note": "text is not a metric"},
        created_at=100.0 + action,
    )
    return directory


def test_runs_versions_and_aliases_are_mirrored(mirror: MlflowMirror, tmp_path: Path) -> None:
    with Registry.open(tmp_path / "root", on_move=[mirror.on_move]) as registry:
        numbers = []
        for action in (0, 1):
            record = registry.register(_artifact(tmp_path, action))
            numbers.append(mirror.register(record, registry.root / record.path))
            assert mirror.register(record, registry.root / record.path) == numbers[-1]
        v1, v2 = (v.version for v in registry.versions(NAME))
        registry.promote(NAME, v1, force=True, reason="first")
        assert mirror.alias_version(NAME, PRODUCTION) == v1
        registry.promote(NAME, v2, force=True, reason="second")
        assert mirror.alias_version(NAME, PRODUCTION) == v2
        registry.rollback(NAME, reason="back")
        assert mirror.alias_version(NAME, PRODUCTION) == v1
        assert registry.announce_failures == 0
    assert numbers == ["1", "2"]
    version = mirror.client.get_model_version(NAME, "2")
    assert version.tags[VERSION_TAG] == v2
    run = mirror.client.get_run(version.run_id)
    assert run.data.params["learner"] == "cql" and run.data.params["optim.lr"] == "0.001"
    assert run.data.metrics == {"dr.value": 0.25, "dr.low": 0.2}
    assert run.info.status == "FINISHED"
    loaded = mirror.load(NAME, PRODUCTION, tmp_path / "download")
    assert loaded.version == v1
