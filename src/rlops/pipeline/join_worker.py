"""The resumable delayed-reward join worker.

All state lives in the log: each step is one transaction, and committing it is the
checkpoint. A worker killed at any point and restarted (or replaced by another) emits
every example exactly once, because a decision is marked joined in the same transaction
that writes its example.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from rlops.core.clock import Clock, RealClock
from rlops.core.errors import ValidationError
from rlops.rewards.join import JoinConfig
from rlops.store.log import DecisionLog, Fault, JoinStepReport


@dataclass(frozen=True, slots=True)
class WorkerReport:
    steps: int
    total: JoinStepReport


class JoinWorker:
    """Joins every configured application's closed windows into examples."""

    def __init__(
        self,
        log: DecisionLog,
        configs: Mapping[str, JoinConfig] | Iterable[JoinConfig],
        *,
        clock: Clock | None = None,
        batch_size: int = 1000,
        hooks: Sequence[Callable[[float], object]] = (),
    ) -> None:
        """``hooks`` are called with the step time ``now`` after each :meth:`run_once`
        (an online learner reads the examples just written)."""
        items = list(configs.values()) if isinstance(configs, Mapping) else list(configs)
        if not items:
            raise ValidationError("the join worker needs at least one JoinConfig", field="configs")
        apps = [c.app for c in items]
        if len(set(apps)) != len(apps):
            raise ValidationError("one JoinConfig per application", field="configs")
        if batch_size < 1:
            raise ValidationError("batch_size must be >= 1", field="batch_size")
        self.log = log
        self.configs = tuple(items)
        self.clock = clock or RealClock()
        self.batch_size = batch_size
        #: Called with the pass's ``now`` after each :meth:`run_once`, once its examples
        #: are committed (an online learner follows the join this way). A hook that raises
        #: stops the pass's caller; the join itself has already committed.
        self.hooks = tuple(hooks)

    def run_once(
        self,
        *,
        fault: Fault | None = None,
        progress: Callable[[JoinStepReport], None] | None = None,
        wait: bool = True,
    ) -> WorkerReport:
        """Step until nothing is due at the clock's current time (with ``wait=False``,
        or until another process is found joining: it will catch up)."""
        now = self.clock.now()
        total, steps = JoinStepReport(), 0
        for config in self.configs:
            while True:
                report = self.log.join_step(
                    config, now=now, batch_size=self.batch_size, fault=fault, wait=wait
                )
                steps += 1
                total = total + report
                if progress is not None:
                    progress(report)
                if report.work == 0:
                    break
        for hook in self.hooks:
            hook(now)
        return WorkerReport(steps=steps, total=total)

    def run_forever(
        self,
        *,
        interval: float,
        stop: threading.Event,
        progress: Callable[[JoinStepReport], None] | None = None,
    ) -> WorkerReport:
        """Run :meth:`run_once` every ``interval`` seconds until ``stop`` is set."""
        total, steps = JoinStepReport(), 0
        while not stop.is_set():
            report = self.run_once(progress=progress)
            total, steps = total + report.total, steps + report.steps
            stop.wait(interval)
        return WorkerReport(steps=steps, total=total)
