"""One Redis connection for the stream, retried with backoff while the server is away.

Every stream operation is idempotent or harmless to repeat (an XADD repeated after a lost
reply duplicates an entry; the log drops the duplicate record by its id), so the rule is
simple: on a connection error wait, reconnect and run the whole operation again, until
``deadline`` passes. A missing consumer group after a Redis restart (``NOGROUP``) is
recreated from id 0: replaying what the log already holds changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis

from rlops.core.errors import RlopsError
from rlops.stream.config import StreamConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


class StreamUnavailableError(RlopsError):
    """Redis stayed unreachable past the retry deadline; nothing was acknowledged."""

    code = "stream_unavailable"


class VolatileStreamError(RlopsError):
    """The Redis behind a durable transport keeps nothing on disk."""

    code = "volatile_stream"


def connect(config: StreamConfig) -> redis.Redis[bytes]:
    client: redis.Redis[bytes] = redis.Redis.from_url(
        config.redis_url, socket_connect_timeout=2.0, socket_timeout=30.0, health_check_interval=0
    )
    return client


def retrying(
    operation: Callable[[], T],
    *,
    seconds: float,
    on_retry: Callable[[BaseException], None] | None = None,
    first_wait: float = 0.05,
    max_wait: float = 1.0,
) -> T:
    """``operation()``, repeated with doubling waits on connection errors for ``seconds``."""
    deadline = time.monotonic() + seconds
    wait = first_wait
    while True:
        try:
            return operation()
        except TRANSIENT as error:
            if time.monotonic() + wait > deadline:
                raise StreamUnavailableError(f"Redis unavailable: {error}") from error
            log.warning("Redis unavailable (%s); retrying in %.2fs", error, wait)
            if on_retry is not None:
                on_retry(error)
            time.sleep(wait)
            wait = min(wait * 2, max_wait)


def check_persistence(client: redis.Redis[bytes], config: StreamConfig) -> str:
    """Refuse a Redis that keeps nothing on disk unless ``allow_volatile``; return its mode.

    A stream entry is acknowledged to the client once Redis has it; only an append-only
    file makes that survive a Redis restart (``appendfsync always`` even a power loss;
    ``everysec`` may lose the last second).
    """
    try:
        appendonly = client.config_get("appendonly").get("appendonly", "")
        fsync = client.config_get("appendfsync").get("appendfsync", "")
    except redis.ResponseError as error:  # CONFIG disabled (some managed services)
        if config.allow_volatile:
            return "unknown"
        raise VolatileStreamError(
            f"cannot read Redis persistence settings ({error}); if this Redis keeps its data"
            " on disk add allow_volatile=1 to the transport URL to start anyway",
            field="transport",
        ) from None
    mode = f"appendonly={appendonly} appendfsync={fsync}"
    if appendonly != "yes" and not config.allow_volatile:
        raise VolatileStreamError(
            f"Redis at {config.redis_url} keeps the stream only in memory ({mode}): a restart"
            " would lose acknowledged decisions. Enable `appendonly yes` (with `appendfsync"
            " always` for no loss at all), or add allow_volatile=1 to the transport URL to"
            " accept that risk.",
            field="transport",
        )
    if appendonly != "yes":
        log.warning("stream transport on a volatile Redis (%s): allowed by allow_volatile", mode)
    elif fsync != "always":
        log.warning("Redis %s: a crash of its host may lose the last second of entries", mode)
    return mode
