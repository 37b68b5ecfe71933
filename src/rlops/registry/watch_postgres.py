"""PostgreSQL LISTEN/NOTIFY: the index announces each alias move as it commits.

The index sends ``pg_notify`` inside the transaction that moves the alias
(:class:`~rlops.registry.databases.PostgresDatabase`), so a listener hears of a move
exactly when it becomes visible. The waiter holds its own autocommit connection (a
listening connection must not sit inside a transaction) and wakes only for its policy
name; the watcher then reads the alias from the index.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from rlops.core.errors import ValidationError
from rlops.registry.databases import PostgresDatabase
from rlops.registry.registry import Registry
from rlops.registry.watch import AliasWatcher


class PostgresWaiter:
    """Wakes on a NOTIFY naming ``name`` on ``channel``; reconnects after an error."""

    def __init__(self, dsn: str, channel: str, name: str) -> None:
        self.dsn = dsn
        self.channel = channel
        self.name = name
        self._conn: Any = None
        self._connect()

    def _connect(self) -> None:
        import psycopg

        self._conn = psycopg.connect(self.dsn, autocommit=True)
        self._conn.execute(f'LISTEN "{self.channel}"')

    def _wanted(self, payload: str) -> bool:
        try:
            return bool(json.loads(payload).get("name") == self.name)
        except (ValueError, AttributeError):
            return True  # unreadable: a read costs little, a missed move costs much

    def wait(self, timeout: float, stop: threading.Event) -> None:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._connect()
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            # Short slices, so stop() is honoured promptly; a notification ends one at once.
            for notify in self._conn.notifies(timeout=min(remaining, 0.25)):
                if self._wanted(notify.payload):
                    return

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def postgres_watcher(
    registry: Registry, name: str, alias: str, *, resync: float = 5.0
) -> AliasWatcher:
    """Watch ``alias`` of ``name`` in a registry whose index is PostgreSQL."""
    database = getattr(registry.index, "database", None)
    if not isinstance(database, PostgresDatabase):
        raise ValidationError("LISTEN/NOTIFY needs a PostgreSQL index", field="index")
    return AliasWatcher(
        lambda: registry.alias(name, alias),
        PostgresWaiter(database.dsn, database.channel, name),
        resync=resync,
        name=f"watch-pg-{name}-{alias}",
    )
