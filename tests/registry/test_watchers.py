"""Every watcher notices an alias move within 1 s: file polling, LISTEN/NOTIFY, pub/sub.

The writer and the server hold separate registries (separate connections), as an
operator's CLI and a serving process would. PostgreSQL and Redis watchers run with a
60 s resync, so a switch inside a second can only come from the notification.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rlops.core.errors import ValidationError
from rlops.registry.handle import PolicyHandle
from rlops.registry.records import PRODUCTION
from rlops.registry.registry import Registry
from rlops.registry.watch import AliasWatcher, FileWaiter, file_watcher
from rlops.registry.watch_postgres import postgres_watcher
from rlops.registry.watch_redis import RedisAnnouncer, redis_watcher
from tests.conftest import PG_DSN, drop_postgres_schema, require_postgres
from tests.registry.conftest import NAME, REDIS_URL, register_fixed, require_redis

MOVES = 6


def _follow_moves(writer: Registry, server: Registry, watch: Callable[[], AliasWatcher]) -> float:
    """Move production back and forth; return the slowest time for the server to follow."""
    versions = [register_fixed(writer, a) for a in (0, 1)]
    writer.promote(NAME, versions[0], force=True, reason="first")
    handle = PolicyHandle.open(server, NAME, PRODUCTION)
    slowest = 0.0
    with watch().start(handle.on_alias) as watcher:
        time.sleep(0.1)  # let the watcher take its first look
        for i in range(MOVES):
            target = versions[(i + 1) % 2]
            if i % 2 == 0:
                writer.promote(NAME, target, force=True, reason="test")
            else:
                writer.rollback(NAME, reason="test")
            moved = time.monotonic()
            while handle.current.version != target and time.monotonic() - moved < 3.0:
                time.sleep(0.002)
            slowest = max(slowest, time.monotonic() - moved)
            assert handle.current.version == target
    assert watcher.errors == 0
    return slowest


@contextmanager
def _pair(root: Path, url: str, **writer_kwargs: object) -> Iterator[tuple[Registry, Registry]]:
    with (
        Registry.open(root, url, **writer_kwargs) as writer,
        Registry.open(root, url) as server,
    ):
        yield writer, server


def test_file_polling_on_the_embedded_index(tmp_path: Path) -> None:
    with _pair(tmp_path, f"sqlite:///{tmp_path / 'index.db'}") as (writer, server):
        slowest = _follow_moves(writer, server, lambda: file_watcher(server, NAME, PRODUCTION))
    assert slowest < 1.0


@pytest.mark.postgres
def test_postgres_listen_notify(tmp_path: Path) -> None:
    require_postgres()
    schema = f"reg_{uuid.uuid4().hex[:12]}"
    try:
        with _pair(tmp_path, f"{PG_DSN}?schema={schema}") as (writer, server):
            slowest = _follow_moves(
                writer, server, lambda: postgres_watcher(server, NAME, PRODUCTION, resync=60)
            )
    finally:
        drop_postgres_schema(schema)
    assert slowest < 1.0


@pytest.mark.redis
def test_redis_pub_sub(tmp_path: Path) -> None:
    require_redis()
    prefix = f"rlops:test:{uuid.uuid4().hex[:8]}:"
    announcer = RedisAnnouncer(REDIS_URL, prefix=prefix)
    url = f"sqlite:///{tmp_path / 'index.db'}"
    with _pair(tmp_path, url, on_move=[announcer]) as (writer, server):
        slowest = _follow_moves(
            writer,
            server,
            lambda: redis_watcher(server, NAME, PRODUCTION, REDIS_URL, prefix=prefix, resync=60),
        )
    announcer.close()
    assert slowest < 1.0


def test_a_failing_announcement_does_not_undo_the_move(sqlite_registry: Registry) -> None:
    def broken(record: object) -> None:
        raise ConnectionError("broker down")

    sqlite_registry.on_move.append(broken)
    v1 = register_fixed(sqlite_registry, 0)
    moved = sqlite_registry.promote(NAME, v1, alias="candidate")
    assert sqlite_registry.require_alias(NAME, "candidate") == moved
    assert sqlite_registry.announce_failures == 1


def test_watchers_check_their_settings(sqlite_registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="PostgreSQL"):
        postgres_watcher(sqlite_registry, NAME, PRODUCTION)
    with pytest.raises(ValidationError, match="resync"):
        AliasWatcher(lambda: None, FileWaiter([tmp_path / "index.db"]), resync=0)
    with pytest.raises(ValidationError, match="interval"):
        FileWaiter([tmp_path / "index.db"], interval=0)
