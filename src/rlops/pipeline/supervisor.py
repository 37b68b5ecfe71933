"""Run N worker processes; restart one that dies; stop them all on SIGTERM or SIGINT.

Each worker is a separate process (a Python worker is bound by one core, and a crash
takes only itself down). A worker that exits 0 has finished (a drain ran out of work)
and is left alone; one that dies otherwise is restarted after a wait that doubles on
each quick death (up to ``max_backoff``) and resets once it stays up ``healthy_after``
seconds. A stop asks every worker to finish its cycle (SIGTERM), then kills what is left
after ``stop_timeout``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from rlops.core.errors import ValidationError

log = logging.getLogger(__name__)

WORKER_INDEX_ENV = "RLOPS_WORKER_INDEX"


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    workers: int
    first_backoff: float = 0.5
    max_backoff: float = 10.0
    healthy_after: float = 30.0
    stop_timeout: float = 15.0
    poll: float = 0.1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValidationError("workers must be >= 1", field="workers")


@dataclass(slots=True)
class _Slot:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = 0.0
    restart_at: float | None = None
    done: bool = False
    restarts: int = 0
    exits: list[int] = field(default_factory=list)


class Supervisor:
    """``command(i)`` is the argv of worker ``i`` (it also gets ``RLOPS_WORKER_INDEX``)."""

    def __init__(self, command: Callable[[int], Sequence[str]], config: SupervisorConfig) -> None:
        self.command = command
        self.config = config
        self.stop = threading.Event()
        self.slots = [_Slot(i, backoff=config.first_backoff) for i in range(config.workers)]

    def _spawn(self, slot: _Slot) -> None:
        env = {**os.environ, WORKER_INDEX_ENV: str(slot.index)}
        slot.process = subprocess.Popen(list(self.command(slot.index)), env=env)
        slot.started = time.monotonic()
        slot.restart_at = None
        log.info("worker %d started (pid %d)", slot.index, slot.process.pid)

    def pids(self) -> list[int | None]:
        return [
            s.process.pid if s.process and s.process.poll() is None else None for s in self.slots
        ]

    def install_signals(self) -> None:
        """SIGTERM and SIGINT stop the workers (main thread only)."""

        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self) -> int:
        """Until every worker finished (exit 0) or a stop; 0 unless a stop found none."""
        for slot in self.slots:
            self._spawn(slot)
        while not self.stop.is_set() and not all(s.done for s in self.slots):
            now = time.monotonic()
            for slot in self.slots:
                self._watch(slot, now)
            self.stop.wait(self.config.poll)
        self._stop_all()
        return 0

    def _watch(self, slot: _Slot, now: float) -> None:
        if slot.done:
            return
        if slot.process is not None:
            code = slot.process.poll()
            if code is None:
                return
            slot.exits.append(code)
            slot.process = None
            if code == 0:
                slot.done = True
                return
            if now - slot.started >= self.config.healthy_after:
                slot.backoff = self.config.first_backoff
            slot.restart_at = now + slot.backoff
            log.warning(
                "worker %d exited with %d; restart in %.1fs", slot.index, code, slot.backoff
            )
            slot.backoff = min(slot.backoff * 2, self.config.max_backoff)
        if slot.restart_at is not None and now >= slot.restart_at:
            slot.restarts += 1
            self._spawn(slot)

    def _stop_all(self) -> None:
        running = [s.process for s in self.slots if s.process and s.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.stop_timeout
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()
