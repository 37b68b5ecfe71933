"""Redis pub/sub: the registry publishes each alias move; servers subscribe.

Publishing happens after the move commits (a registry ``on_move`` hook), so a message
never announces a move that could still roll back. Redis pub/sub is fire-and-forget: a
subscriber that is reconnecting misses messages, which the watcher's periodic resync
heals. A message only wakes the watcher, which reads the alias from the index: a forged
or stale message cannot point a server anywhere the index does not.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from rlops.registry.records import AliasRecord
from rlops.registry.registry import Registry
from rlops.registry.watch import AliasWatcher

PREFIX = "rlops:registry:"


def redis_channel(name: str, prefix: str = PREFIX) -> str:
    """One channel per policy name, so a server is woken only for what it serves."""
    return f"{prefix}{name}"


class RedisAnnouncer:
    """An ``on_move`` hook: publish the moved alias on its policy's channel."""

    def __init__(self, url: str, *, prefix: str = PREFIX) -> None:
        import redis

        self._client: Any = redis.Redis.from_url(url)
        self.prefix = prefix

    def __call__(self, record: AliasRecord) -> None:
        self._client.publish(
            redis_channel(record.name, self.prefix), json.dumps(record.to_json(), sort_keys=True)
        )

    def close(self) -> None:
        self._client.close()


class RedisWaiter:
    """Wakes on any message on ``channel``; resubscribes after an error."""

    def __init__(self, url: str, channel: str) -> None:
        import redis

        self._client: Any = redis.Redis.from_url(url)
        self.channel = channel
        self._pubsub: Any = None
        self._subscribe()

    def _subscribe(self) -> None:
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(self.channel)
        # Wait for the confirmation, so a move published right after start is not missed.
        deadline = time.monotonic() + 5.0
        while not self._pubsub.subscribed and time.monotonic() < deadline:
            self._pubsub.get_message(timeout=0.05)

    def wait(self, timeout: float, stop: threading.Event) -> None:
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._pubsub.get_message(timeout=min(remaining, 0.25)) is not None:
                while self._pubsub.get_message(timeout=0.0) is not None:
                    pass  # one read answers all of them
                return

    def close(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
        self._client.close()


def redis_watcher(
    registry: Registry,
    name: str,
    alias: str,
    url: str,
    *,
    prefix: str = PREFIX,
    resync: float = 5.0,
) -> AliasWatcher:
    """Watch ``alias`` of ``name``, woken by :class:`RedisAnnouncer` messages."""
    return AliasWatcher(
        lambda: registry.alias(name, alias),
        RedisWaiter(url, redis_channel(name, prefix)),
        resync=resync,
        name=f"watch-redis-{name}-{alias}",
    )
