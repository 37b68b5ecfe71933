"""The stream join worker in-process: entries become examples once; hooks see each cycle."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rlops.apps.defaults import pricing_join_config
from rlops.core.clock import ManualClock
from rlops.pipeline.join_worker import JoinWorker
from rlops.pipeline.stream_worker import StreamJoinWorker
from rlops.store import open_log
from rlops.stream.consumer import RedisConsumer
from rlops.stream.publisher import RedisPublisher
from tests.factories import decision, outcome
from tests.serving.redis_server import PrivateRedis
from tests.stream.conftest import stream_config


def test_stream_entries_become_examples_once(
    durable_redis: PrivateRedis, closing: list[Any], tmp_path: Path
) -> None:
    config = stream_config(durable_redis)
    publisher = RedisPublisher(config)
    closing.append(publisher)
    publisher.append_decisions([decision(i) for i in range(300)])
    publisher.append_outcomes([outcome(i, i) for i in range(0, 300, 3)])
    publisher.append_decisions([decision(i) for i in range(100)])  # a retried batch
    log = open_log(tmp_path / "log.db")
    closing.append(log)
    consumer = RedisConsumer(config, name="w")
    closing.append(consumer)
    seen: list[float] = []
    worker = StreamJoinWorker(
        log,
        consumer,
        [pricing_join_config()],
        clock=ManualClock(1e9),
        batch_size=64,
        hooks=[seen.append],
    )
    report = worker.run(stop=threading.Event(), drain=True)
    assert report.decisions == 400 and report.outcomes == 100 and report.dead_letters == 0
    # The clock is past every window, so a decision may be joined before its outcome is
    # read: that outcome then comes as a late revision. Either way the current examples
    # hold every outcome once, and no (event, revision) is written twice.
    assert report.join.joined == 300
    history = log.examples(current_only=False)
    assert len(history) == len({(e.event_id, e.revision) for e in history})
    current = log.examples()
    assert len(current) == len({e.event_id for e in current}) == 300
    assert sum(not e.defaulted for e in current) == 100
    assert all(e.n_outcomes == (1 if int(e.event_id[1:]) % 3 == 0 else 0) for e in current)
    assert log.stats().duplicate_decisions == 100
    assert consumer.pending() == 0 and seen and set(seen) == {1e9}
    assert len(seen) == report.cycles


def test_join_worker_calls_its_hooks_with_now(tmp_path: Path) -> None:
    log = open_log(tmp_path / "log.db")
    log.append_decisions([decision(i) for i in range(5)])
    calls: list[float] = []
    worker = JoinWorker(log, [pricing_join_config()], clock=ManualClock(5e9), hooks=[calls.append])
    assert worker.run_once().total.joined == 5
    assert calls == [5e9]
    log.close()
