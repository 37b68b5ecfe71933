"""A join worker killed with SIGKILL mid-run, then restarted, emits every example once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlops.apps.defaults import pricing_join_config
from rlops.pipeline.join_worker import JoinWorker
from rlops.store import SqlDecisionLog, open_log
from tests.conftest import drop_postgres_schema, new_postgres_log, require_postgres
from tests.factories import decision, outcome

N = 6000
WORKER = """
import sys
from rlops.apps.defaults import pricing_join_config
from rlops.core.clock import ManualClock
from rlops.pipeline.join_worker import JoinWorker
from rlops.store import open_log
log = open_log(sys.argv[1])
print("ready", flush=True)
JoinWorker(log, [pricing_join_config()], clock=ManualClock(1e12), batch_size=100).run_once()
print("done", flush=True)
"""


def fill(log: SqlDecisionLog) -> None:
    for start in range(0, N, 1000):
        log.append_decisions([decision(i) for i in range(start, start + 1000)])
        log.append_outcomes([outcome(i, i) for i in range(start, start + 1000, 2)])


def kill_midway(url: str, log: SqlDecisionLog) -> int:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, url], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    while log.stats().examples < N // 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return log.stats().examples


def check_exactly_once(log: SqlDecisionLog) -> None:
    JoinWorker(log, [pricing_join_config()], batch_size=500).run_once()
    from rlops.core.clock import ManualClock

    JoinWorker(log, [pricing_join_config()], clock=ManualClock(1e12)).run_once()
    stats = log.stats()
    examples = log.examples(current_only=False)
    assert len(examples) == len({e.event_id for e in examples}) == N
    assert all(e.revision == 0 and not e.late for e in examples)
    assert stats.outcomes["joined"] == N // 2 and stats.outcomes["new"] == 0
    assert sum(not e.defaulted for e in examples) == N // 2


def test_sigkill_mid_join_then_restart_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with open_log(url) as log:
        fill(log)
        partial = kill_midway(url, log)
        assert 0 < partial < N, "the kill should land mid-run"
        check_exactly_once(log)


@pytest.mark.postgres
def test_sigkill_mid_join_then_restart_postgres() -> None:
    require_postgres()
    log, schema = new_postgres_log()
    try:
        fill(log)
        partial = kill_midway(log.url, log)
        assert 0 < partial < N
        check_exactly_once(log)
    finally:
        log.close()
        drop_postgres_schema(schema)
