"""The stream join worker: stream entries in, examples out, each exactly once.

A cycle reads a batch (stale pending entries first, then new ones), appends its
decisions and outcomes to the log (idempotent on their ids, all-or-nothing per kind),
acknowledges the entries only after that commit, and steps the log's join for every
configured application (each step one transaction, so examples are written exactly
once whichever worker runs it). A worker killed anywhere in a cycle leaves its entries
pending; another claims them after ``claim_idle`` and appends them again, which changes
nothing already in the log. ``hooks`` are called with ``now`` after each cycle (an
online learner reads the new examples there).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rlops.core.clock import Clock, RealClock
from rlops.pipeline.join_worker import JoinWorker
from rlops.rewards.join import JoinConfig
from rlops.store.log import DecisionLog, JoinStepReport
from rlops.stream.consumer import Batch, RedisConsumer

Hook = Callable[[float], object]
#: Called at named points of a cycle ("appended": in the log, not yet acknowledged).
CycleFault = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class StreamReport:
    cycles: int = 0
    entries: int = 0
    decisions: int = 0
    outcomes: int = 0
    dead_letters: int = 0
    claimed: int = 0
    trimmed: int = 0
    join: JoinStepReport = field(default_factory=JoinStepReport)

    def __add__(self, other: StreamReport) -> StreamReport:
        return StreamReport(
            cycles=self.cycles + other.cycles,
            entries=self.entries + other.entries,
            decisions=self.decisions + other.decisions,
            outcomes=self.outcomes + other.outcomes,
            dead_letters=self.dead_letters + other.dead_letters,
            claimed=self.claimed + other.claimed,
            trimmed=self.trimmed + other.trimmed,
            join=self.join + other.join,
        )


class StreamJoinWorker:
    """Moves stream entries into the log, then joins what is due."""

    def __init__(
        self,
        log: DecisionLog,
        consumer: RedisConsumer,
        configs: Mapping[str, JoinConfig] | Iterable[JoinConfig],
        *,
        clock: Clock | None = None,
        batch_size: int = 1000,
        hooks: Sequence[Hook] = (),
        fault: CycleFault | None = None,
        trim_interval: float = 5.0,
        read_entries: int = 64,
    ) -> None:
        """``read_entries`` bounds one read in stream entries, each a published batch of up
        to a few thousand records; ``batch_size`` bounds one join transaction."""
        # The log join (and its checks of configs and batch_size) is the JoinWorker's.
        self.joiner = JoinWorker(log, configs, clock=clock or RealClock(), batch_size=batch_size)
        self.log = log
        self.consumer = consumer
        self.batch_size = batch_size
        self.read_entries = read_entries
        self.hooks = tuple(hooks)
        self.fault = fault
        self.trim_interval = trim_interval
        self._last_trim = time.monotonic()

    def cycle(self, *, block: bool = True, batch: Batch | None = None) -> StreamReport:
        """Read a batch (or take ``batch``, already read), log it, acknowledge it, join."""
        if batch is None:
            batch = self.consumer.read(self.read_entries, block=block)
        self._commit(batch.decode())
        # Not waiting: while another worker joins, this one moves entries into the log.
        joined = self.joiner.run_once(wait=False).total  # no hooks there: they run below
        now = self.joiner.clock.now()
        for hook in self.hooks:
            hook(now)
        trimmed = 0
        if time.monotonic() - self._last_trim >= self.trim_interval:
            self._last_trim = time.monotonic()
            trimmed = self.consumer.trim()
        return StreamReport(
            cycles=1,
            entries=batch.entries,
            decisions=len(batch.decisions),
            outcomes=len(batch.outcomes),
            dead_letters=len(batch.dead),
            claimed=batch.claimed,
            trimmed=trimmed,
            join=joined,
        )

    def _commit(self, batch: Batch) -> None:
        if batch.decisions:
            self.log.append_decisions(batch.decisions)
        if batch.outcomes:
            self.log.append_outcomes(batch.outcomes)
        if self.fault is not None:
            self.fault("appended")
        self.consumer.ack(batch)

    def run(
        self,
        *,
        stop: threading.Event,
        drain: bool = False,
        progress: Callable[[StreamReport], None] | None = None,
    ) -> StreamReport:
        """Cycle until ``stop`` is set; with ``drain``, also stop once the group has
        nothing left: no entry undelivered and none pending with any consumer."""
        total = StreamReport()
        prefetch = Prefetch(self.consumer, self.read_entries)
        try:
            while not stop.is_set():
                report = self.cycle(batch=prefetch.take())
                total = total + report
                if progress is not None:
                    progress(report)
                idle = drain and report.entries == 0
                if idle and self.consumer.pending() == 0 and self.consumer.backlog() == 0:
                    # Join what turns skipped (waiting for a running join to finish).
                    total = total + StreamReport(join=self.joiner.run_once().total)
                    break
        finally:
            prefetch.close()
        return total


class Prefetch:
    """Reads the next batch while the current one is logged and joined.

    Redis replies and SQLite's work both release the GIL, so reading batch n + 1 overlaps
    committing and joining batch n. The entries come raw: decoding them here held the GIL
    while the worker's thread waited to get back from SQLite (its appends took five times
    as long as alone); the worker decodes them instead.
    At most one batch waits here; its entries are pending in the group (delivered, not
    acknowledged) like those of the batch in hand, so a worker killed with one queued
    leaves it to be claimed like any other.
    """

    def __init__(self, consumer: RedisConsumer, count: int) -> None:
        self._consumer = consumer
        self._count = count
        self._queue: queue.Queue[Batch | BaseException] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        item: Batch | BaseException
        while not self._stop.is_set():
            try:
                item = self._consumer.read(self._count, block=True, decode=False)
            except BaseException as error:  # handed to the worker's thread, raised there
                item = error
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def take(self) -> Batch:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
