"""Stream fixtures (the private ``redis-server`` fixtures live in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from rlops.stream.config import StreamConfig, parse_stream_url
from tests.serving.redis_server import PrivateRedis


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    """Things with ``close()`` (clients, publishers, consumers) closed after the test."""
    items: list[Any] = []
    yield items
    for item in reversed(items):
        item.close()


def stream_config(server: PrivateRedis, query: str = "") -> StreamConfig:
    return parse_stream_url(f"{server.url}?stream=t&partitions=4&claim_idle=0.2{query}")
