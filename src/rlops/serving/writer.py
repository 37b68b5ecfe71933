"""Group commit: many requests' records, one durable transaction, then every ack.

A decision is acknowledged only once it is durable. Committing each request alone would
cap the server at the disk's fsync rate; instead one writer thread takes everything
queued since its last commit, appends it in one transaction (SQLite WAL with
``synchronous=FULL``, or PostgreSQL), and only then settles the waiting requests. Under
load the batches grow by themselves, so throughput follows the load while each request
waits at most about one commit.

Memory is bounded: past ``max_pending`` queued records :meth:`GroupCommitWriter.submit`
raises :class:`OverloadedError` at once, and the server answers 503 with Retry-After, so
nothing accepted is ever dropped. A failed commit settles its requests with the error
(their records are not in the log; the client retries) and the writer carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from rlops.core.errors import RlopsError
from rlops.core.records import Decision, Outcome

log = logging.getLogger(__name__)

Kind = Literal["decisions", "outcomes"]


class OverloadedError(RlopsError):
    """The log cannot keep up: the request was refused whole, nothing of it queued."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message, field=None)
        self.retry_after = retry_after


class LogUnavailableError(RlopsError):
    """A commit failed; the request's records are not in the log."""

    code = "log_unavailable"


class Sink(Protocol):
    """The two appends the writer needs (every :class:`~rlops.store.log.DecisionLog`)."""

    def append_decisions(self, decisions: Sequence[Decision]) -> object: ...

    def append_outcomes(self, outcomes: Sequence[Outcome]) -> object: ...


class Ticket(Protocol):
    """Settled once with ``None`` (durable) or the error that kept it from the log."""

    def settle(self, error: BaseException | None) -> None: ...


class WaitTicket:
    """For in-process callers: block until the records are durable."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._error: BaseException | None = None

    def settle(self, error: BaseException | None) -> None:
        self._error = error
        self._done.set()

    def wait(self, timeout: float | None = None) -> None:
        if not self._done.wait(timeout):
            raise LogUnavailableError("the log did not confirm the write in time")
        if self._error is not None:
            raise self._error


@dataclass(frozen=True, slots=True)
class _Item:
    kind: Kind
    records: Sequence[Decision] | Sequence[Outcome]
    ticket: Ticket | asyncio.Future[None]


def _settle_futures(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


class GroupCommitWriter:
    """One thread, one connection, one transaction per kind per round."""

    def __init__(
        self,
        open_sink: Callable[[], Sink],
        *,
        max_pending: int = 50_000,
        max_commit: int = 5_000,
        retry_after: float = 1.0,
        on_commit: Callable[[Kind, int, float], None] | None = None,
    ) -> None:
        """``open_sink`` runs in the writer thread (a SQLite connection stays in one thread).

        ``on_commit(kind, rows, seconds)`` is called after each commit (for metrics).
        """
        self._open_sink = open_sink
        self.max_pending = max_pending
        self.max_commit = max_commit
        self.retry_after = retry_after
        self._on_commit = on_commit
        self._queue: deque[_Item] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._stop = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self.sink: Sink | None = None
        self.open_error: BaseException | None = None
        self.last_error: str | None = None
        # per kind: a failing decisions table is not healed by a working outcomes one
        self._errors: dict[Kind, str | None] = {"decisions": None, "outcomes": None}
        self.commits = 0
        self.committed = {"decisions": 0, "outcomes": 0}
        self.failed_commits = 0
        self.refused = 0

    def start(self, timeout: float = 30.0) -> GroupCommitWriter:
        self._thread.start()
        self._ready.wait(timeout)
        if self.open_error is not None:
            raise self.open_error
        return self

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def healthy(self) -> bool:
        """Running, with a log, and the last commit (if any) went through."""
        return self._thread.is_alive() and self.sink is not None and self.last_error is None

    def submit(
        self,
        kind: Kind,
        records: Sequence[Decision] | Sequence[Outcome],
        ticket: Ticket | asyncio.Future[None],
    ) -> None:
        """Queue ``records`` whole, or raise :class:`OverloadedError` and queue nothing."""
        n = len(records)
        with self._cond:
            if self._stop or not self._thread.is_alive():
                raise LogUnavailableError("the log writer is not running")
            if self._pending + n > self.max_pending and self._pending > 0:
                self.refused += 1
                raise OverloadedError(
                    f"{self._pending} records are waiting for the log; retry shortly",
                    retry_after=self.retry_after,
                )
            self._queue.append(_Item(kind, records, ticket))
            self._pending += n
            self._cond.notify()

    def write(self, kind: Kind, records: Sequence[Decision] | Sequence[Outcome]) -> None:
        """Blocking in-process write: returns once durable, raises if it is not."""
        ticket = WaitTicket()
        self.submit(kind, records, ticket)
        ticket.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then end the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.sink = self._open_sink()
        except BaseException as error:  # reported to start(); the server is then not ready
            self.open_error = error
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stop:
                        self._cond.wait()
                    if not self._queue and self._stop:
                        return
                    batch = self._take()
                self._commit(batch)
        finally:
            close = getattr(self.sink, "close", None)
            if close is not None:
                close()

    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        rows = 0
        while self._queue and (not batch or rows + len(self._queue[0].records) <= self.max_commit):
            item = self._queue.popleft()
            batch.append(item)
            rows += len(item.records)
        return batch

    def _commit(self, batch: list[_Item]) -> None:
        errors: dict[Kind, BaseException | None] = {"decisions": None, "outcomes": None}
        assert self.sink is not None
        for kind in ("decisions", "outcomes"):
            records: list[Any] = [r for item in batch if item.kind == kind for r in item.records]
            if not records:
                continue
            started = time.perf_counter()
            try:
                if kind == "decisions":
                    self.sink.append_decisions(records)
                else:
                    self.sink.append_outcomes(records)
            except Exception as exc:  # settle the waiters with it; the writer carries on
                log.exception("committing %d %s failed", len(records), kind)
                self.failed_commits += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._errors[kind] = self.last_error
                errors[kind] = LogUnavailableError(f"the log refused the write: {self.last_error}")
                continue
            self.commits += 1
            self.committed[kind] += len(records)
            self._errors[kind] = None
            self.last_error = next((e for e in self._errors.values() if e), None)
            if self._on_commit is not None:
                with contextlib.suppress(Exception):  # metrics must not fail a durable write
                    self._on_commit(kind, len(records), time.perf_counter() - started)
        with self._cond:
            self._pending -= sum(len(item.records) for item in batch)
        self._settle(batch, errors)

    @staticmethod
    def _settle(batch: list[_Item], errors: dict[Kind, BaseException | None]) -> None:
        by_loop: dict[
            tuple[asyncio.AbstractEventLoop, BaseException | None], list[asyncio.Future[None]]
        ] = {}
        for item in batch:
            ticket, error = item.ticket, errors[item.kind]
            if isinstance(ticket, asyncio.Future):
                by_loop.setdefault((ticket.get_loop(), error), []).append(ticket)
            else:
                ticket.settle(error)
        for (loop, error), futures in by_loop.items():
            # a closed loop (shutdown) raises RuntimeError: nobody is waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_futures, futures, error)
