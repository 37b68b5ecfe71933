"""Serving fixtures: the shared Redis, and a private Redis a test may stop and start.

The shared server (``RLOPS_REDIS_URL``, default 127.0.0.1:6379) is used with a unique key
prefix per test, deleted afterwards. Without it Redis tests skip with the reason, except
under CI (``CI`` set), where they fail; the same holds for the ``redis-server`` binary
behind ``private_redis``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.serving.redis_server import REDIS_SERVER, PrivateRedis

REDIS_URL = os.environ.get("RLOPS_REDIS_URL", "redis://127.0.0.1:6379/0")


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so Redis tests must not skip: {reason}")
    pytest.skip(reason)


def redis_available(url: str = REDIS_URL) -> str | None:
    """None if the server answers, else why not."""
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        return f"Redis not reachable at {url}: {str(error).strip()[:120]}"
    finally:
        client.close()
    return None


def require_redis() -> None:
    reason = redis_available()
    if reason is not None:
        _skip_or_fail(reason)


def count_keys(url: str, prefix: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return sum(1 for _ in client.scan_iter(match=f"{prefix}:*", count=1000))
    finally:
        client.close()


def delete_keys(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


@pytest.fixture
def redis_url() -> str:
    """The shared Redis server's URL (skips, or fails under CI, when it is unreachable)."""
    require_redis()
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"rlops:test:{uuid.uuid4().hex[:12]}"
    yield prefix
    delete_keys(redis_url, prefix)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A running private ``redis-server``; ``stop()`` and ``start()`` it at will."""
    if shutil.which(REDIS_SERVER) is None:
        _skip_or_fail(f"{REDIS_SERVER} is not installed")
    server = PrivateRedis()
    try:
        server.start()
        yield server
    finally:
        server.close()
