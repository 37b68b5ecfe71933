"""Production flips 100 times under a stream of decisions: none fails, each names its version.

Two versions whose actions differ (v1 always chooses action 0, v2 action 1), so the
logged action proves which version really decided. Decision threads call the handle and
append to a real decision log; the main thread promotes v2 through its gate and rolls
back, 100 moves, waiting each time until the server follows and decides at least once
with the new version. Afterwards every logged decision's version must match its action,
and the handle must have loaded each version once: every later switch is a swap.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rlops.core.ids import new_event_id
from rlops.core.records import Decision
from rlops.policies.artifact import LoadedPolicy
from rlops.registry.handle import LocalCounter, PolicyHandle
from rlops.registry.records import PRODUCTION
from rlops.registry.registry import Registry
from rlops.registry.watch import AliasWatcher, file_watcher
from rlops.registry.watch_postgres import postgres_watcher
from rlops.store import open_log
from tests.conftest import PG_DSN, drop_postgres_schema, require_postgres
from tests.registry.conftest import CATALOG, NAME, SCHEMA, register_fixed
from tests.registry.test_registry_contract import gate

FLIPS = 100
THREADS = 2


@pytest.fixture(params=["file", pytest.param("postgres", marks=pytest.mark.postgres)])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "file":
        yield "file", f"sqlite:///{tmp_path / 'root' / 'index.db'}"
        return
    require_postgres()
    schema = f"reg_{uuid.uuid4().hex[:12]}"
    yield "postgres", f"{PG_DSN}?schema={schema}"
    drop_postgres_schema(schema)


def test_flipping_production_under_load(index: tuple[str, str], tmp_path: Path) -> None:
    kind, url = index
    writer = Registry.open(tmp_path / "root", url)
    server = Registry.open(tmp_path / "root", url)
    v1, v2 = register_fixed(writer, 0), register_fixed(writer, 1)
    action_of = {v1: CATALOG.ids[0], v2: CATALOG.ids[1]}
    writer.promote(NAME, v1, force=True, reason="first release", actor="test")
    writer.record_gate(gate(v2, v1))

    loads: list[str] = []

    def loader(version: str) -> LoadedPolicy:
        loads.append(version)
        return server.load(NAME, version)

    failures, swaps = LocalCounter(), LocalCounter()
    handle = PolicyHandle(loader, loader(v1), load_failures=failures, swaps=swaps)
    watcher: AliasWatcher = (
        file_watcher(server, NAME, PRODUCTION, interval=0.01)
        if kind == "file"
        else postgres_watcher(server, NAME, PRODUCTION)
    )
    log = open_log(tmp_path / "log.db")
    stop = threading.Event()
    errors: list[BaseException] = []
    made = [0] * THREADS
    seen: list[set[str]] = [set() for _ in range(THREADS)]

    def decide(worker: int) -> None:
        rng = np.random.default_rng(worker)
        batch: list[Decision] = []
        try:
            while not stop.is_set():
                x = rng.normal(size=(1, SCHEMA.dim)).astype(np.float32)
                served = handle.decide(x, CATALOG, rng)
                index = int(served.result.index[0])
                batch.append(
                    Decision(
                        event_id=new_event_id(),
                        ts=time.time(),
                        app="pricing",
                        unit_id=f"u{worker}",
                        arm="production",
                        policy_version=served.version,
                        features={"x0": float(x[0, 0])},
                        action_ids=CATALOG.ids,
                        action_id=CATALOG.ids[index],
                        propensity=float(served.result.propensity[0]),
                    )
                )
                seen[worker].add(served.version)
                made[worker] += 1
                time.sleep(0)  # a server waits on I/O between requests: let the others run
                if len(batch) >= 200:
                    log.append_decisions(batch)
                    batch = []
            log.append_decisions(batch)
        except BaseException as error:  # recorded and asserted below: no decision may fail
            errors.append(error)

    threads = [threading.Thread(target=decide, args=(w,)) for w in range(THREADS)]
    watcher.start(handle.on_alias)
    for t in threads:
        t.start()
    started = time.monotonic()
    try:
        for flip in range(FLIPS):
            target = v2 if flip % 2 == 0 else v1
            if target == v2:
                writer.promote(NAME, v2, actor="test", reason=f"flip {flip}")
            else:
                writer.rollback(NAME, actor="test", reason=f"flip {flip}")
            deadline = time.monotonic() + 2.0
            while handle.current.version != target and time.monotonic() < deadline:
                time.sleep(0.001)
            assert handle.current.version == target, f"flip {flip} not followed"
            for w in range(THREADS):
                seen[w].clear()
            while not all(target in s for s in seen) and time.monotonic() < deadline:
                time.sleep(0.0005)
            assert not errors
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        watcher.stop()
    elapsed = time.monotonic() - started
    assert not errors, errors[:3]
    assert failures.value == 0
    assert loads == [v1, v2], "after the first load of each version, every switch is a swap"
    assert swaps.value == FLIPS
    logged = log.decisions()
    assert len(logged) == sum(made) > FLIPS
    wrong = [d for d in logged if d.action_id != action_of[d.policy_version]]
    assert wrong == []
    assert {d.policy_version for d in logged} == {v1, v2}
    history = writer.history(NAME, PRODUCTION)
    assert len(history) == FLIPS + 1
    assert sum(e.kind == "rollback" for e in history) == FLIPS // 2
    log.close()
    writer.close()
    server.close()
    print(f"{kind}: {FLIPS} flips, {sum(made)} decisions in {elapsed:.2f}s")
