"""Two writers promote at once, from the same revision: one wins, the other gets a conflict.

Each writer has its own registry (its own database connection), as two operators or two
pipeline runs would; threads and spawned processes both, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlops.core.errors import ConflictError
from rlops.registry.registry import Registry
from tests.registry.conftest import NAME, register_fixed

ROUNDS = 10
ALIAS = "candidate"


def _race(
    who: int,
    root: str,
    url: str,
    versions: list[str],
    rounds: int,
    wait: Callable[[], Any],
    report: Callable[[tuple[int, int, str]], None],
) -> None:
    """Each round: read the alias, wait for the other writer, promote from that revision."""
    with Registry.open(root, url) as registry:
        for round_ in range(rounds):
            wait()
            current = registry.require_alias(NAME, ALIAS)
            target = versions[(versions.index(current.version) + 1 + who) % len(versions)]
            wait()
            try:
                registry.promote(
                    NAME, target, alias=ALIAS, actor=f"w{who}", expected_revision=current.revision
                )
                report((round_, who, "won"))
            except ConflictError:
                report((round_, who, "conflict"))
            wait()


def _process_main(
    who: int, root: str, url: str, versions: list[str], barrier: Any, results: Any
) -> None:
    _race(who, root, url, versions, ROUNDS, barrier.wait, results.put)


def _setup(registry: Registry) -> list[str]:
    versions = [register_fixed(registry, a) for a in (0, 1, 2)]
    registry.promote(NAME, versions[0], alias=ALIAS)
    return versions


def _check(registry: Registry, outcomes: list[tuple[int, int, str]]) -> None:
    for round_ in range(ROUNDS):
        verdicts = sorted(v for r, _, v in outcomes if r == round_)
        assert verdicts == ["conflict", "won"], (round_, verdicts)
    events = registry.history(NAME, ALIAS)
    assert [e.revision for e in events] == list(range(1, ROUNDS + 2))
    winners = [f"w{who}" for r, who, v in sorted(outcomes) if v == "won"]
    assert [e.actor for e in events[1:]] == winners
    # Each move starts where the previous one ended: no lost update.
    for before, after in itertools.pairwise(events):
        assert after.from_version == before.to_version


def test_two_threads(registry: Registry, index_url: str) -> None:
    versions = _setup(registry)
    barrier = threading.Barrier(2, timeout=30)
    outcomes: list[tuple[int, int, str]] = []
    threads = [
        threading.Thread(
            target=_race,
            args=(
                who,
                str(registry.root),
                index_url,
                versions,
                ROUNDS,
                barrier.wait,
                outcomes.append,
            ),
        )
        for who in (0, 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    _check(registry, outcomes)


def test_two_processes(registry: Registry, index_url: str, tmp_path: Path) -> None:
    versions = _setup(registry)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2, timeout=60)
    results = context.Queue()
    processes = [
        context.Process(
            target=_process_main,
            args=(who, str(registry.root), index_url, versions, barrier, results),
        )
        for who in (0, 1)
    ]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * ROUNDS)]
    for p in processes:
        p.join(60)
        assert p.exitcode == 0
    results.close()
    results.join_thread()
    _check(registry, outcomes)
