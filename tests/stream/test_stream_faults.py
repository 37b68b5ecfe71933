"""Stream join workers as real processes, under faults: a SIGKILL mid-batch, a Redis
restart mid-run; and the HTTP server publishing to the stream.

Afterwards every decision has exactly one current example and no (event, revision) was
written twice: the log's idempotent appends and transactional join absorb every replay.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis
from starlette.testclient import TestClient

from rlops.core.records import Decision, Outcome
from rlops.pipeline.join_commands import FAULT_ENV
from rlops.serving.server import create_app
from rlops.store import SqlDecisionLog, open_log
from rlops.stream.config import StreamConfig, parse_stream_url
from rlops.stream.publisher import RedisPublisher
from tests.factories import decision, outcome
from tests.serving.helpers import server_config
from tests.serving.redis_server import PrivateRedis

RLOPS = str(Path(sys.executable).parent / "rlops")
N = 3000


def start_workers(
    transport: str,
    log_url: str,
    tmp_path: Path,
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    out = open(tmp_path / "workers.out", "ab")  # noqa: SIM115  # closed with the process
    process = subprocess.Popen(
        [RLOPS, "join", "--workers", str(workers), "--follow", "--transport", transport,
         "--log", log_url, "--batch-size", "100", "--app", "pricing"],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out.close()
    return process


def stop_workers(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(60)


def pending(config: StreamConfig, consumer: str | None = None) -> int:
    client = redis.Redis.from_url(config.redis_url)
    try:
        if consumer is None:
            replies: list[dict[str, Any]] = [
                client.xpending(k, config.group)  # type: ignore[no-untyped-call]  # untyped in types-redis
                for k in config.keys
            ]
            return sum(int(r["pending"]) for r in replies)
        return sum(
            len(client.xpending_range(k, config.group, "-", "+", 10_000, consumername=consumer))
            for k in config.keys
        )
    finally:
        client.close()


def wait_for(condition: Any, timeout: float, what: str, tmp_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            log = (tmp_path / "workers.out").read_text(errors="replace")[-3000:]
            raise AssertionError(f"timed out waiting for {what}; workers said:\n{log}")
        time.sleep(0.1)


def records() -> tuple[list[Decision], list[Outcome]]:
    return [decision(i) for i in range(N)], [outcome(i, i) for i in range(0, N, 2)]


def all_joined(log: SqlDecisionLog, config: StreamConfig) -> bool:
    """Every record in the log and joined (late outcomes too), nothing left pending."""
    stats = log.stats()
    return (
        stats.examples_current == N
        and stats.outcomes_received == N // 2
        and stats.outcomes["new"] == 0
        and pending(config) == 0
    )


def check_exactly_once(log: SqlDecisionLog, n: int) -> None:
    history = log.examples(current_only=False)
    assert len(history) == len({(e.event_id, e.revision) for e in history})
    current = log.examples()
    assert len(current) == len({e.event_id for e in current}) == n == log.count_decisions()
    assert sum(not e.defaulted for e in current) == n // 2 == log.count_outcomes()


def test_sigkill_a_worker_between_log_commit_and_ack(
    durable_redis: PrivateRedis, tmp_path: Path
) -> None:
    transport = f"{durable_redis.url}?stream=t&partitions=4&claim_idle=1"
    config = parse_stream_url(transport)
    decisions, outcomes = records()
    publisher = RedisPublisher(config)
    for i in range(0, N, 500):
        publisher.append_decisions(decisions[i : i + 500])
    publisher.append_outcomes(outcomes)
    publisher.close()
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    marker = tmp_path / "fault.pid"
    workers = start_workers(
        transport, log_url, tmp_path, env={FAULT_ENV: f"hang_before_ack:{marker}"}
    )
    try:
        wait_for(lambda: marker.exists() and marker.read_text(), 60, "the fault", tmp_path)
        pid = int(marker.read_text())
        victim = f"{socket.gethostname()}-{pid}"
        held = pending(config, victim)
        assert held > 0, "the hung worker holds its batch, appended but not acknowledged"
        os.kill(pid, signal.SIGKILL)
        log = open_log(log_url)
        wait_for(
            lambda: all_joined(log, config),
            90,
            "every example",
            tmp_path,
        )
        assert pending(config, victim) == 0, "another worker claimed the killed one's entries"
        assert stop_workers(workers) == 0
        check_exactly_once(log, N)
        log.close()
    finally:
        if workers.poll() is None:
            workers.kill()
            workers.wait()


def test_redis_restarted_mid_run(durable_redis: PrivateRedis, tmp_path: Path) -> None:
    transport = f"{durable_redis.url}?stream=t&partitions=4&claim_idle=2"
    config = parse_stream_url(transport)
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    workers = start_workers(transport, log_url, tmp_path)
    decisions, outcomes = records()
    publisher = RedisPublisher(config)
    sent, first_part, down = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            for i in range(0, N, 50):
                if i == N // 3:
                    first_part.set()
                    down.wait(30)  # the rest goes out while Redis is away, retried
                publisher.append_decisions(decisions[i : i + 50])
                publisher.append_outcomes(
                    [o for o in outcomes if i <= int(o.event_id[1:]) < i + 50]
                )
                time.sleep(0.01)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            sent.set()

    thread = threading.Thread(target=publish)
    try:
        log = open_log(log_url)
        thread.start()
        wait_for(lambda: log.count_decisions() > N // 10, 60, "the first decisions", tmp_path)
        assert first_part.wait(60)
        durable_redis.stop()
        down.set()
        time.sleep(0.5)
        durable_redis.start()
        thread.join(120)
        assert not errors and sent.is_set()
        assert publisher.retries > 0, "the publisher met the outage and retried"
        wait_for(
            lambda: all_joined(log, config),
            120,
            "every example",
            tmp_path,
        )
        assert stop_workers(workers) == 0
        check_exactly_once(log, N)
        log.close()
    finally:
        publisher.close()
        if workers.poll() is None:
            workers.kill()
            workers.wait()


def test_server_publishes_and_join_workers_write_the_log(
    durable_redis: PrivateRedis, tmp_path: Path
) -> None:
    transport = f"{durable_redis.url}?stream=srv&partitions=2"
    config = server_config(tmp_path, transport=transport, metrics=False)
    with TestClient(create_app(config)) as client:
        events = [
            client.post("/v1/decisions", json={"unit_id": f"u{i}"}).json()["event_id"]
            for i in range(20)
        ]
        body = [
            {"outcome_id": f"o{i}", "event_id": e, "signals": {"converted": 1.0}}
            for i, e in enumerate(events[:5])
        ]
        assert client.post("/v1/outcomes", json=body).status_code == 202
    with open_log(config.log) as log:
        assert log.count_decisions() == 0, "with a stream transport the server does not write"
    done = subprocess.run(
        [RLOPS, "join", "--transport", transport, "--log", config.log, "--window", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with open_log(config.log) as log:
        examples = {e.event_id: e for e in log.examples()}
    assert sorted(examples) == sorted(events)
    assert [examples[e].n_outcomes for e in events] == [1] * 5 + [0] * 15
