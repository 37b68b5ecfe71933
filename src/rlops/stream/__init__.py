"""The stream between servers and join workers: the log itself, or Redis Streams."""

from rlops.stream.config import StreamConfig, is_stream_url, parse_stream_url
from rlops.stream.partition import partition_of

__all__ = ["StreamConfig", "is_stream_url", "parse_stream_url", "partition_of"]
