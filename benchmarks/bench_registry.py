"""Time from ``rollback`` returning to the first decision served by the previous version.

A serving handle follows production through a watcher (file polling on the embedded
SQLite index; LISTEN/NOTIFY on PostgreSQL) while a thread decides continuously. Each
round promotes v2, waits until it serves, rolls back, and measures from the moment
``rollback`` returns to the first decision made by v1 (0 if one came earlier: a
notification can beat the function's return). The writer and the server hold separate
registries, as an operator's CLI and a server process would.

Baseline, same run: a cold start of the same artifact (index read, sha256 of every file,
array digests, build, first decision): what a server without the warm predecessor would
pay on top of noticing the move. ``ratio`` is baseline / value (higher is better).
Target: p99 under 1 s.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import BenchResult
from rlops.policies import MLPPolicy
from rlops.registry.handle import PolicyHandle, plain_stack
from rlops.registry.records import PRODUCTION
from rlops.registry.registry import Registry
from rlops.registry.watch import AliasWatcher, file_watcher
from rlops.sim.pricing_core import PRICING_ACTIONS, PRICING_SCHEMA

ROUNDS = 100
NAME = "pricing"
PG_DSN = os.environ.get("RLOPS_PG_DSN", "postgresql://127.0.0.1:5432/test")


def _policy(action: int, seed: int) -> MLPPolicy:
    """A 256x256 MLP (about 70k weights) that always prefers ``action``."""
    rng = np.random.default_rng(seed)
    sizes = [PRICING_SCHEMA.dim, 256, 256, len(PRICING_ACTIONS)]
    layers = [(rng.normal(size=(a, b)) * 0.01, np.zeros(b)) for a, b in itertools.pairwise(sizes)]
    layers[-1][1][action] = 10.0
    return MLPPolicy(PRICING_ACTIONS.ids, tuple(layers))


class _Decider:
    """Decides in a loop; records the time of each decision whose version differs from the
    previous decision's."""

    def __init__(self, handle: PolicyHandle) -> None:
        self.handle = handle
        self.switches: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(1, PRICING_SCHEMA.dim)).astype(np.float32)
        last = ""
        while not self.stop.is_set():
            served = self.handle.decide(x, PRICING_ACTIONS, rng)
            if served.version != last:
                self.switches.append((time.perf_counter(), served.version))
                last = served.version
            time.sleep(0.0002)  # ~5k decisions/s: a busy server, not a spinning core

    def wait_for(self, version: str, after: int, timeout: float = 5.0) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for at, served in self.switches[after:]:
                if served == version:
                    return at
            time.sleep(0.0005)
        raise TimeoutError(f"{version} never served")


def _measure(root: Path, url: str, watch: Callable[[Registry], AliasWatcher]) -> dict[str, float]:
    with Registry.open(root, url) as writer, Registry.open(root, url) as server:
        v1 = writer.register_policy(
            _policy(0, 1), name=NAME, schema=PRICING_SCHEMA, catalog=PRICING_ACTIONS
        ).version
        v2 = writer.register_policy(
            _policy(1, 2), name=NAME, schema=PRICING_SCHEMA, catalog=PRICING_ACTIONS
        ).version
        writer.promote(NAME, v1, force=True, reason="bench")
        cold = []
        x = np.zeros((1, PRICING_SCHEMA.dim), dtype=np.float32)
        for _ in range(20):
            start = time.perf_counter()
            loaded = server.load(NAME, v1)
            plain_stack(loaded).decide(x, PRICING_ACTIONS, np.random.default_rng(0))
            cold.append(time.perf_counter() - start)
        handle = PolicyHandle.open(server, NAME, PRODUCTION)
        decider = _Decider(handle)
        decider.thread.start()
        latencies = []
        jitter = np.random.default_rng(0)
        with watch(server).start(handle.on_alias):
            time.sleep(0.2)
            for _ in range(ROUNDS):
                writer.promote(NAME, v2, force=True, reason="bench")
                decider.wait_for(v2, len(decider.switches) - 1)
                # Roll back at a random moment: right after a switch the poller has just
                # looked, and a rollback then would always wait one full interval.
                time.sleep(float(jitter.uniform(0.0, 0.1)))
                mark = len(decider.switches)
                writer.rollback(NAME, reason="bench")
                returned = time.perf_counter()
                first = decider.wait_for(v1, mark)
                latencies.append(max(0.0, first - returned))
        decider.stop.set()
        decider.thread.join()
    return {
        "p99": float(np.percentile(latencies, 99)),
        "p50": float(np.percentile(latencies, 50)),
        "cold_p99": float(np.percentile(cold, 99)),
        "cold_p50": float(np.percentile(cold, 50)),
    }


def _result(backend: str, figures: dict[str, float]) -> BenchResult:
    print(
        f"registry.{backend}: rollback -> first decision p50 {figures['p50'] * 1e3:.1f} ms, "
        f"p99 {figures['p99'] * 1e3:.1f} ms; cold start p50 {figures['cold_p50'] * 1e3:.1f} ms, "
        f"p99 {figures['cold_p99'] * 1e3:.1f} ms"
    )
    return BenchResult(
        name=f"registry.{backend}.rollback_to_first_decision_p99",
        value=figures["p99"],
        unit="s",
        baseline="cold start of the same artifact (load, verify, first decision), p99",
        baseline_value=figures["cold_p99"],
        ratio=figures["cold_p99"] / figures["p99"] if figures["p99"] > 0 else float("inf"),
        target="p99 < 1 s",
        passed=figures["p99"] < 1.0,
    )


def run() -> list[BenchResult]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        figures = _measure(
            root / "embedded",
            f"sqlite:///{root / 'embedded' / 'index.db'}",
            lambda server: file_watcher(server, NAME, PRODUCTION),
        )
        results.append(_result("embedded", figures))
        import psycopg

        try:
            psycopg.connect(PG_DSN, connect_timeout=3).close()
        except psycopg.OperationalError:
            print("PostgreSQL not reachable at", PG_DSN, "- skipped")
            return results
        from rlops.registry.watch_postgres import postgres_watcher

        schema = f"bench_registry_{uuid.uuid4().hex[:8]}"
        try:
            figures = _measure(
                root / "postgres",
                f"{PG_DSN}?schema={schema}",
                lambda server: postgres_watcher(server, NAME, PRODUCTION),
            )
        finally:
            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        results.append(_result("postgres", figures))
    return results
