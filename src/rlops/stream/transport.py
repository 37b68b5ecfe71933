"""Choosing the transport by URL: the decision log itself, or Redis Streams."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlops.core.errors import ValidationError
from rlops.stream.config import is_stream_url, parse_stream_url

if TYPE_CHECKING:
    from rlops.store.sql_log import SqlDecisionLog
    from rlops.stream.publisher import RedisPublisher


def open_sink(transport: str, log_url: str) -> SqlDecisionLog | RedisPublisher:
    """Where a server's accepted records go.

    ``log`` (the embedded default) appends to the log at ``log_url``; a ``redis://`` URL
    publishes to its partition streams, and join workers write the log from there.
    """
    if transport == "log":
        from rlops.store import open_log

        return open_log(log_url)
    if is_stream_url(transport):
        from rlops.stream.publisher import RedisPublisher

        return RedisPublisher(parse_stream_url(transport))
    raise ValidationError(
        f"unknown transport {transport!r}: use 'log' or redis://host:port/db?stream=...",
        field="transport",
    )
