"""A tampered, truncated or lying artifact is refused with a clear error."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rlops.core.errors import IntegrityError, NotFoundError, ValidationError
from rlops.policies import load_policy, read_manifest, save_policy
from rlops.policies.artifact import MANIFEST, WEIGHTS
from tests.policies.conftest import FAMILIES


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    policy, schema, catalog = FAMILIES["mlp_q"](np.random.default_rng(3))
    save_policy(
        tmp_path / "v1",
        policy,
        name="advisor",
        schema=schema,
        catalog=catalog,
        reward_spec_hash="r1",
        snapshot_id="s1",
        training_config={"learner": "cql", "seed": 3},
        evaluation={"dr": {"value": 0.1}},
        created_at=1.0,
    )
    return tmp_path / "v1"


def _edit_manifest(path: Path, change: dict[str, object]) -> None:
    data = json.loads((path / MANIFEST).read_text())
    data.update(change)
    (path / MANIFEST).write_text(json.dumps(data))


def test_the_manifest_records_provenance(artifact: Path) -> None:
    manifest = read_manifest(artifact)
    assert manifest.family == "mlp"
    assert manifest.reward_spec_hash == "r1"
    assert manifest.snapshot_id == "s1"
    assert manifest.training_config == {"learner": "cql", "seed": 3}
    assert manifest.evaluation == {"dr": {"value": 0.1}}
    assert set(manifest.arrays) == {"w0", "b0", "w1", "b1", "shift", "scale"}
    assert manifest.arrays["w0"]["shape"] == [manifest.feature_schema.dim, 32]
    assert len(manifest.files[WEIGHTS]["sha256"]) == 64


def test_one_changed_byte_is_refused(artifact: Path) -> None:
    raw = bytearray((artifact / WEIGHTS).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (artifact / WEIGHTS).write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="sha256"):
        load_policy(artifact)


def test_a_missing_file_is_refused(artifact: Path) -> None:
    (artifact / WEIGHTS).unlink()
    with pytest.raises(IntegrityError, match="missing"):
        load_policy(artifact)


def test_a_missing_manifest_is_not_found(artifact: Path) -> None:
    (artifact / MANIFEST).unlink()
    with pytest.raises(NotFoundError):
        load_policy(artifact)


def test_a_manifest_that_lies_about_shapes_is_refused(artifact: Path) -> None:
    data = json.loads((artifact / MANIFEST).read_text())
    data["arrays"]["w0"]["shape"] = [3, 3]
    (artifact / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(IntegrityError):
        load_policy(artifact)


def test_weights_rewritten_with_a_fixed_checksum_still_fail_the_array_digest(
    artifact: Path,
) -> None:
    """Someone edits an array and updates the file's sha256: the per-array digest catches it."""
    import hashlib

    with np.load(artifact / WEIGHTS) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["b1"] = arrays["b1"] + 1.0
    np.savez(artifact / WEIGHTS, **arrays)
    data = json.loads((artifact / MANIFEST).read_text())
    data["files"][WEIGHTS]["sha256"] = hashlib.sha256((artifact / WEIGHTS).read_bytes()).hexdigest()
    (artifact / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="checksum"):
        load_policy(artifact)


def test_a_changed_training_config_breaks_the_version(artifact: Path) -> None:
    _edit_manifest(artifact, {"training_config": {"learner": "cql", "seed": 4}})
    with pytest.raises(IntegrityError, match="version"):
        load_policy(artifact)


def test_an_unknown_format_is_refused(artifact: Path) -> None:
    _edit_manifest(artifact, {"format": 99})
    with pytest.raises(IntegrityError, match="format"):
        load_policy(artifact)


def test_a_truncated_weights_file_is_refused(artifact: Path) -> None:
    raw = (artifact / WEIGHTS).read_bytes()
    (artifact / WEIGHTS).write_bytes(raw[: len(raw) // 3])
    with pytest.raises(IntegrityError):
        load_policy(artifact)


def test_no_pickle_is_ever_loaded(artifact: Path) -> None:
    with zipfile.ZipFile(artifact / WEIGHTS) as z:
        for name in z.namelist():
            header = z.read(name)[:128]
            assert b"'descr': '|O'" not in header


def test_saving_into_a_non_empty_directory_writes_nothing(tmp_path: Path) -> None:
    policy, schema, catalog = FAMILIES["linear"](np.random.default_rng(0))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "other.txt").write_text("keep")
    with pytest.raises(ValidationError):
        save_policy(
            tmp_path / "busy", policy, name="p", schema=schema, catalog=catalog, created_at=0
        )
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["other.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["busy"]


def test_a_schema_of_the_wrong_width_is_refused_at_save(tmp_path: Path) -> None:
    policy, _, catalog = FAMILIES["linear"](np.random.default_rng(0))
    _, advisor_schema, _ = FAMILIES["mlp_q"](np.random.default_rng(0))
    with pytest.raises(ValidationError, match="schema"):
        save_policy(
            tmp_path / "x", policy, name="p", schema=advisor_schema, catalog=catalog, created_at=0
        )
    assert not (tmp_path / "x").exists()
