"""The serving handle: blue-green switches, a warm predecessor, failures that change nothing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rlops.core.errors import IntegrityError
from rlops.policies.artifact import LoadedPolicy
from rlops.policies.stack import PolicyStack
from rlops.registry.handle import LOAD_FAILURES_METRIC, LocalCounter, PolicyHandle
from rlops.registry.records import PRODUCTION, AliasRecord
from rlops.registry.registry import Registry
from tests.registry.conftest import CATALOG, NAME, SCHEMA, register_fixed

X = np.zeros((2, SCHEMA.dim), dtype=np.float32)


def _handle(registry: Registry) -> tuple[PolicyHandle, list[str], str, str, LocalCounter]:
    v1, v2 = register_fixed(registry, 0), register_fixed(registry, 1)
    loads: list[str] = []

    def loader(version: str) -> LoadedPolicy:
        loads.append(version)
        return registry.load(NAME, version)

    swaps = LocalCounter()
    return PolicyHandle(loader, registry.load(NAME, v1), swaps=swaps), loads, v1, v2, swaps


def test_a_switch_loads_beside_then_swaps_and_keeps_the_old_one_warm(
    sqlite_registry: Registry,
) -> None:
    handle, loads, v1, v2, swaps = _handle(sqlite_registry)
    assert handle.switch_to(v2, revision=2)
    assert (handle.current.version, handle.previous.version if handle.previous else None) == (
        v2,
        v1,
    )
    assert handle.switch_to(v1, revision=3)  # back to the warm one: no load
    assert handle.switch_to(v1, revision=3)  # already serving: nothing to do
    assert loads == [v2]
    assert swaps.value == 2
    served = handle.probabilities(X, CATALOG)
    assert served.version == v1 and served.result.argmax(axis=1).tolist() == [0, 0]
    assert handle.run(lambda p: p.manifest.name).result == NAME


def test_an_older_revision_is_ignored(sqlite_registry: Registry) -> None:
    handle, _, v1, v2, _ = _handle(sqlite_registry)
    handle.on_alias(AliasRecord(NAME, PRODUCTION, v2, 5, 0.0, "t"))
    handle.on_alias(AliasRecord(NAME, PRODUCTION, v1, 4, 0.0, "t"))  # arrived late
    assert handle.current.version == v2


def test_a_local_rollback_is_a_swap(sqlite_registry: Registry) -> None:
    handle, _, v1, v2, _ = _handle(sqlite_registry)
    assert not handle.rollback()
    handle.switch_to(v2)
    assert handle.rollback() and handle.current.version == v1


def test_a_failed_load_or_stack_keeps_serving_and_counts(sqlite_registry: Registry) -> None:
    v1, v2 = register_fixed(sqlite_registry, 0), register_fixed(sqlite_registry, 1)

    def broken(version: str) -> LoadedPolicy:
        raise IntegrityError("weights.npz fails its sha256 check", field="weights.npz")

    failures = LocalCounter()
    handle = PolicyHandle(broken, sqlite_registry.load(NAME, v1), load_failures=failures)
    assert not handle.switch_to(v2)
    assert handle.current.version == v1 and failures.value == 1
    assert handle.last_error is not None and "sha256" in handle.last_error

    def picky(loaded: LoadedPolicy) -> PolicyStack:
        if loaded.version == v2:
            raise ValueError("no stack for you")
        return PolicyStack(loaded.policy, loaded.manifest.feature_schema)

    handle = PolicyHandle(
        lambda v: sqlite_registry.load(NAME, v),
        sqlite_registry.load(NAME, v1),
        stack_factory=picky,
        load_failures=failures,
    )
    assert not handle.switch_to(v2)
    decided = handle.decide(X, CATALOG, np.random.default_rng(0))
    assert decided.version == v1 and decided.result.index.tolist() == [0, 0]
    assert failures.value == 2


def test_a_prometheus_counter_can_count_failures(sqlite_registry: Registry) -> None:
    from prometheus_client import CollectorRegistry, Counter

    metrics = CollectorRegistry()
    counter = Counter(
        LOAD_FAILURES_METRIC, "Policy versions that failed to load.", registry=metrics
    )
    v1 = register_fixed(sqlite_registry, 0)
    handle = PolicyHandle(
        lambda v: sqlite_registry.load(NAME, v),
        sqlite_registry.load(NAME, v1),
        load_failures=counter,
    )
    assert not handle.switch_to("0123456789abcdef0123")
    assert metrics.get_sample_value(LOAD_FAILURES_METRIC) == 1.0


def test_open_needs_the_alias(sqlite_registry: Registry) -> None:
    from rlops.core.errors import NotFoundError

    with pytest.raises(NotFoundError):
        PolicyHandle.open(sqlite_registry, NAME, PRODUCTION)


def test_the_serving_path_imports_no_torch() -> None:
    code = (
        "import sys; import rlops.registry.handle, rlops.registry.watch, "
        "rlops.registry.watch_postgres, rlops.registry.watch_redis; "
        "print(sorted(m for m in ('torch', 'sklearn', 'stable_baselines3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
