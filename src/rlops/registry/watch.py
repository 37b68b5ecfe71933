"""Noticing that an alias moved: one loop, three ways to be woken.

An :class:`AliasWatcher` reads the alias from the index (the source of truth) whenever
its :class:`Waiter` wakes it, and calls back when the alias differs from what it last
delivered. Waiters only say "look now": the embedded default polls the SQLite index's
files (:class:`FileWaiter`), PostgreSQL wakes it with LISTEN/NOTIFY
(:mod:`rlops.registry.watch_postgres`), Redis with pub/sub
(:mod:`rlops.registry.watch_redis`). Because a wake-up only triggers a read, a lost,
duplicated or out-of-order message cannot make a server serve the wrong version; and
every ``resync`` seconds the loop re-delivers the alias anyway, which heals a lost
message and retries a load that failed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from rlops.core.errors import ValidationError
from rlops.registry.databases import SqliteDatabase
from rlops.registry.records import AliasRecord
from rlops.registry.registry import Registry

log = logging.getLogger(__name__)
OnMove = Callable[[AliasRecord], None]


class Waiter(Protocol):
    def wait(self, timeout: float, stop: threading.Event) -> None:
        """Return when the alias may have moved, after ``timeout`` s, or once ``stop`` is set."""
        ...

    def close(self) -> None: ...


class AliasWatcher:
    """Follows one alias in a daemon thread; ``start(on_move)``, then ``stop()``."""

    def __init__(
        self,
        read: Callable[[], AliasRecord | None],
        waiter: Waiter,
        *,
        resync: float = 5.0,
        name: str = "alias-watcher",
    ) -> None:
        if not resync > 0:
            raise ValidationError("resync must be positive", field="resync")
        self._read = read
        self._waiter = waiter
        self.resync = resync
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._name = name
        #: Reads or waits that raised (the loop carries on).
        self.errors = 0
        #: Deliveries made (changes and resyncs).
        self.deliveries = 0

    def start(self, on_move: OnMove) -> AliasWatcher:
        if self._thread is not None:
            raise ValidationError("this watcher is already started", field="watcher")
        self._thread = threading.Thread(
            target=self._run, args=(on_move,), name=self._name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._waiter.close()

    def __enter__(self) -> AliasWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, on_move: OnMove) -> None:
        last: AliasRecord | None = None
        synced = time.monotonic()
        while not self._stop.is_set():
            try:
                record = self._read()
                now = time.monotonic()
                if record is not None and (record != last or now - synced >= self.resync):
                    last, synced = record, now
                    self.deliveries += 1
                    on_move(record)
                self._waiter.wait(max(0.0, self.resync - (time.monotonic() - synced)), self._stop)
            except Exception:  # a flaky index or broker must not kill the watcher
                self.errors += 1
                log.exception("%s: watching failed; retrying", self._name)
                self._stop.wait(0.5)


Signature = tuple[tuple[int, int, int] | None, ...]


class FileWaiter:
    """Polls ``stat`` of files (the SQLite index and its WAL) every ``interval`` seconds.

    Every commit to a WAL-mode database writes the ``-wal`` file (and a checkpoint the
    main file), changing its mtime or size. Two commits within one mtime tick can leave
    the same signature, so after any change the waiter keeps waking for ``grace``
    seconds: a second move inside that window is still read.
    """

    def __init__(
        self, paths: Sequence[Path], *, interval: float = 0.02, grace: float = 1.0
    ) -> None:
        if not 0 < interval <= 1.0:
            raise ValidationError("interval must lie in (0, 1] seconds", field="interval")
        self.paths = tuple(paths)
        self.interval = interval
        self.grace = grace
        self._last = self._signature()
        self._hot_until = 0.0

    def _signature(self) -> Signature:
        out: list[tuple[int, int, int] | None] = []
        for path in self.paths:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                out.append(None)
            else:
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def wait(self, timeout: float, stop: threading.Event) -> None:
        deadline = time.monotonic() + timeout
        while not stop.wait(self.interval):
            signature = self._signature()
            now = time.monotonic()
            if signature != self._last:
                self._last, self._hot_until = signature, now + self.grace
                return
            if now < self._hot_until or now >= deadline:
                return

    def close(self) -> None:
        """Nothing is held open."""


def file_watcher(
    registry: Registry,
    name: str,
    alias: str,
    *,
    interval: float = 0.02,
    resync: float = 5.0,
) -> AliasWatcher:
    """Watch ``alias`` of ``name`` in a registry whose index is a SQLite file."""
    database = getattr(registry.index, "database", None)
    if not isinstance(database, SqliteDatabase):
        raise ValidationError(
            "file polling watches a SQLite index; use the PostgreSQL or Redis watcher",
            field="index",
        )
    return AliasWatcher(
        lambda: registry.alias(name, alias),
        FileWaiter(database.files(), interval=interval),
        resync=resync,
        name=f"watch-file-{name}-{alias}",
    )
