"""A tampered artifact is refused wherever it is met, and the version serving keeps serving.

Tampering happens after registration (and after promotion, where the registry verified
it), so the refusal tested is the server's: the handle's load fails, the old version
answers every decision, and the alert counter counts the failure.
"""

from __future__ import annotations

import json
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from rlops.core.errors import IntegrityError
from rlops.policies.artifact import MANIFEST, WEIGHTS
from rlops.registry.handle import LocalCounter, PolicyHandle
from rlops.registry.records import PRODUCTION
from rlops.registry.registry import Registry
from rlops.registry.watch import file_watcher
from tests.registry.conftest import CATALOG, NAME, SCHEMA, register_fixed

KINDS = ["one_byte", "missing_file", "shape_lie", "truncated", "manifest_gone", "evaluation_edit"]


def tamper(directory: Path, kind: str) -> None:
    """Damage an artifact one way; files are read-only once registered, so unlock first."""
    for path in directory.iterdir():
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    weights, manifest = directory / WEIGHTS, directory / MANIFEST
    if kind == "one_byte":
        raw = bytearray(weights.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        weights.write_bytes(bytes(raw))
    elif kind == "missing_file":
        weights.unlink()
    elif kind == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    elif kind == "manifest_gone":
        manifest.unlink()
    else:
        data = json.loads(manifest.read_text())
        if kind == "shape_lie":
            data["arrays"]["w0"]["shape"] = [3, 3]
        else:  # a field the content version does not cover: only the registered sha256 sees it
            data["evaluation"] = {"dr": {"value": 99.0}}
        manifest.write_text(json.dumps(data))


def _decide(handle: PolicyHandle) -> tuple[str, str]:
    x = np.zeros((1, SCHEMA.dim), dtype=np.float32)
    served = handle.decide(x, CATALOG, np.random.default_rng(0))
    return served.version, CATALOG.ids[int(served.result.index[0])]


@pytest.mark.parametrize("kind", KINDS)
def test_the_registry_refuses_a_tampered_version(sqlite_registry: Registry, kind: str) -> None:
    v1 = register_fixed(sqlite_registry, 0)
    tamper(sqlite_registry.root / sqlite_registry.version(NAME, v1).path, kind)
    with pytest.raises(IntegrityError) as refused:
        sqlite_registry.load(NAME, v1)
    assert refused.value.field is not None
    with pytest.raises(IntegrityError):
        sqlite_registry.promote(NAME, v1, alias="candidate")
    assert sqlite_registry.alias(NAME, "candidate") is None


@pytest.mark.parametrize("kind", KINDS)
def test_a_tampered_new_version_leaves_the_old_one_serving(
    sqlite_registry: Registry, kind: str
) -> None:
    registry = sqlite_registry
    v1, v2 = register_fixed(registry, 0), register_fixed(registry, 1)
    registry.promote(NAME, v1, force=True, reason="first")
    failures = LocalCounter()
    handle = PolicyHandle.open(registry, NAME, PRODUCTION, load_failures=failures)
    registry.promote(NAME, v2, force=True, reason="next")
    tamper(registry.root / registry.version(NAME, v2).path, kind)
    handle.on_alias(registry.require_alias(NAME, PRODUCTION))
    assert handle.current.version == v1 and handle.previous is None
    assert failures.value == 1 and handle.last_error is not None and v2 in handle.last_error
    assert _decide(handle) == (v1, CATALOG.ids[0])


def test_the_watcher_keeps_the_old_version_until_the_artifact_is_repaired(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    registry = sqlite_registry
    v1, v2 = register_fixed(registry, 0), register_fixed(registry, 1)
    registry.promote(NAME, v1, force=True, reason="first")
    failures = LocalCounter()
    handle = PolicyHandle.open(registry, NAME, PRODUCTION, load_failures=failures)
    registry.promote(NAME, v2, force=True, reason="next")
    stored = registry.root / registry.version(NAME, v2).path
    shutil.copytree(stored, tmp_path / "backup")
    tamper(stored, "one_byte")
    with file_watcher(registry, NAME, PRODUCTION, resync=0.2).start(handle.on_alias):
        deadline = time.monotonic() + 5
        while failures.value < 2 and time.monotonic() < deadline:
            assert _decide(handle) == (v1, CATALOG.ids[0])
            time.sleep(0.01)
        assert handle.current.version == v1
        shutil.rmtree(stored)
        shutil.copytree(tmp_path / "backup", stored)  # repaired: the next resync loads it
        deadline = time.monotonic() + 5
        while handle.current.version != v2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert _decide(handle) == (v2, CATALOG.ids[1])
    assert handle.previous is not None and handle.previous.version == v1
