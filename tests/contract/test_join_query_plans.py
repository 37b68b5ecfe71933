"""A join step's cost follows what arrived, never the size of the log.

Every statement a join step runs on SQLite (a step with quarantined, released, late and
on-time outcomes) is put through ``EXPLAIN QUERY PLAN``: none may scan one of the growing
tables (decisions, outcomes, examples, pending). The release of quarantined outcomes
once did: a scan of every outcome ever received, at every step.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from rlops.apps.defaults import pricing_join_config
from rlops.core.clock import ManualClock
from rlops.pipeline.join_worker import JoinWorker
from rlops.store import open_log
from rlops.store import sqlite as sqlite_engine
from tests.factories import decision, outcome

GROWING = ("decisions", "outcomes", "examples", "pending")


def test_no_join_statement_scans_a_growing_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: dict[str, list[Any]] = {}
    for name in ("execute", "query"):
        real = getattr(sqlite_engine.SqliteTx, name)

        def spy(self: Any, sql: str, params: Any = (), real: Any = real) -> Any:
            statements.setdefault(sql, list(params))
            return real(self, sql, params)

        monkeypatch.setattr(sqlite_engine.SqliteTx, name, spy)
    with open_log(f"sqlite:///{tmp_path / 'log.db'}") as log:
        log.append_decisions([decision(i) for i in range(20)])
        # On time for ten decisions, and one for a decision that has not arrived yet.
        log.append_outcomes([outcome(i, i) for i in range(10)] + [outcome(99, 500)])
        worker = JoinWorker(log, [pricing_join_config()], clock=ManualClock(1e7))
        statements.clear()  # the appends' statements are not the join's
        worker.run_once()
        log.append_outcomes([outcome(50, 3)])  # late: decision 3 was joined
        log.append_decisions([decision(500)])  # releases the quarantined outcome
        worker.run_once()
        worker.run_once()
        joins = {s: p for s, p in statements.items() if not s.startswith(("BEGIN", "COMMIT"))}
        assert log.stats().outcomes["late"] == 1 and log.stats().outcomes["quarantined"] == 0
    db = sqlite3.connect(tmp_path / "log.db")
    assert len(joins) > 15  # the whole step was seen: ingest, classify, join, rejoin
    for sql, params in joins.items():
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params)]
        scans = [p for p in plan if p.split()[:2] in (["SCAN", t] for t in GROWING)]
        assert not scans, f"{sql[:80]}...: {plan}"
    db.close()
