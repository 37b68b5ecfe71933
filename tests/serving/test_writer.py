"""The group-commit writer: durable before acknowledged, bounded, and never silent."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from rlops.core.records import Decision, Outcome
from rlops.serving.writer import GroupCommitWriter, LogUnavailableError, OverloadedError, WaitTicket
from rlops.store import open_log


def decision(i: int) -> Decision:
    return Decision(
        event_id=f"e{i}",
        ts=float(i),
        app="pricing",
        unit_id=f"u{i}",
        arm="production",
        policy_version="v1",
        features={"x": 1.0},
        action_ids=("a", "b"),
        action_id="a",
        propensity=0.5,
    )


class SlowSink:
    """Records what it was given; each append takes ``delay`` seconds and may fail."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.fail = False
        self.decisions: list[Decision] = []
        self.outcomes: list[Outcome] = []
        self.calls = 0

    def append_decisions(self, decisions: Sequence[Decision]) -> object:
        self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            raise OSError("disk full")
        self.decisions.extend(decisions)
        return None

    def append_outcomes(self, outcomes: Sequence[Outcome]) -> object:
        self.outcomes.extend(outcomes)
        return None


def test_every_acknowledged_write_is_in_the_log_and_commits_are_grouped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    writer = GroupCommitWriter(lambda: open_log(url)).start()
    acked: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for j in range(50):
            d = decision(k * 1000 + j)
            writer.write("decisions", [d])
            with lock:
                acked.append(d.event_id)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.stop()
    log = open_log(url)
    stored = {d.event_id for d in log.decisions()}
    assert set(acked) <= stored and len(acked) == 400
    # 400 single-record writes from 8 concurrent clients: several ride on each commit.
    assert writer.commits < 400
    assert writer.committed["decisions"] == 400


def test_overload_refuses_the_whole_request_and_queues_nothing() -> None:
    sink = SlowSink(delay=0.2)
    writer = GroupCommitWriter(lambda: sink, max_pending=10).start()
    first = WaitTicket()
    writer.submit("decisions", [decision(i) for i in range(8)], first)
    time.sleep(0.05)  # the writer holds the first 8 in its slow commit
    second = WaitTicket()
    writer.submit("decisions", [decision(100 + i) for i in range(2)], second)
    with pytest.raises(OverloadedError) as refused:
        writer.submit("decisions", [decision(200)], WaitTicket())
    assert refused.value.retry_after > 0
    first.wait(5)
    second.wait(5)
    writer.stop()
    assert [d.event_id for d in sink.decisions] == [f"e{i}" for i in range(8)] + ["e100", "e101"]
    assert writer.refused == 1


def test_a_failed_commit_is_reported_to_its_waiters_and_the_writer_recovers() -> None:
    sink = SlowSink()
    writer = GroupCommitWriter(lambda: sink).start()
    sink.fail = True
    with pytest.raises(LogUnavailableError, match="disk full"):
        writer.write("decisions", [decision(1)])
    healthy_after_failure = writer.healthy
    assert not healthy_after_failure and writer.failed_commits == 1
    sink.fail = False
    writer.write("decisions", [decision(2)])
    assert writer.healthy
    writer.stop()
    assert [d.event_id for d in sink.decisions] == ["e2"]


def test_outcomes_commit_apart_from_decisions() -> None:
    sink = SlowSink()
    writer = GroupCommitWriter(lambda: sink).start()
    sink.fail = True  # decisions fail, outcomes do not
    decided, observed = WaitTicket(), WaitTicket()
    writer.submit("decisions", [decision(1)], decided)
    writer.submit("outcomes", [Outcome("o1", "e1", 1.0, {"converted": 1.0})], observed)
    observed.wait(5)
    with pytest.raises(LogUnavailableError):
        decided.wait(5)
    writer.stop()
    assert [o.outcome_id for o in sink.outcomes] == ["o1"]


def test_async_waiters_are_settled_on_their_loop() -> None:
    sink = SlowSink(delay=0.01)
    writer = GroupCommitWriter(lambda: sink).start()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        futures = []
        for i in range(20):
            future: asyncio.Future[None] = loop.create_future()
            writer.submit("decisions", [decision(i)], future)
            futures.append(future)
        await asyncio.wait_for(asyncio.gather(*futures), 5)

    asyncio.run(main())
    writer.stop()
    assert len(sink.decisions) == 20
    assert sink.calls < 20  # queued while the first commit ran: grouped


def test_stop_commits_what_is_queued() -> None:
    sink = SlowSink(delay=0.05)
    writer = GroupCommitWriter(lambda: sink).start()
    tickets = []
    for i in range(5):
        ticket = WaitTicket()
        writer.submit("decisions", [decision(i)], ticket)
        tickets.append(ticket)
    writer.stop()
    for ticket in tickets:
        ticket.wait(0)
    assert len(sink.decisions) == 5
    with pytest.raises(LogUnavailableError):
        writer.submit("decisions", [decision(9)], WaitTicket())


def test_a_log_that_cannot_open_fails_start() -> None:
    def broken() -> SlowSink:
        raise OSError("read-only file system")

    with pytest.raises(OSError, match="read-only"):
        GroupCommitWriter(broken).start()
