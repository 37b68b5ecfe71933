"""Publishing records to Redis Streams: the server's group-commit writer's sink.

One batch is one pipelined round trip: one XADD per partition the batch touches, each
entry holding that partition's records (see :mod:`rlops.stream.codec`).
:meth:`RedisPublisher.append_decisions` returns only once Redis has answered every XADD,
so the server's acknowledgement still means "accepted durably by the transport". While
Redis is away the whole batch is retried with backoff for ``retry_seconds``, then fails
(the writer answers 503 and the client retries); a batch retried after a lost reply may
be added twice, which the log's idempotent appends absorb.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import redis

from rlops.core.records import Decision, Outcome
from rlops.store.log import AppendResult
from rlops.stream.codec import BATCH_DECISIONS, BATCH_OUTCOMES, encode_decisions, encode_outcomes
from rlops.stream.config import StreamConfig
from rlops.stream.partition import partition_of
from rlops.stream.redis_client import check_persistence, connect, retrying


class RedisPublisher:
    """A :class:`~rlops.serving.writer.Sink` that appends to the partition streams."""

    def __init__(self, config: StreamConfig, *, client: redis.Redis[bytes] | None = None) -> None:
        self.config = config
        self.url = config.redis_url
        self._client = client or connect(config)
        try:
            self.persistence = retrying(
                lambda: check_persistence(self._client, config), seconds=config.retry_seconds
            )
        except BaseException:
            self._client.close()
            raise
        self.retries = 0

    def append_decisions(self, decisions: Sequence[Decision]) -> AppendResult:
        return self._publish(BATCH_DECISIONS, decisions, encode_decisions)

    def append_outcomes(self, outcomes: Sequence[Outcome]) -> AppendResult:
        return self._publish(BATCH_OUTCOMES, outcomes, encode_outcomes)

    def _publish(
        self,
        field: bytes,
        records: Sequence[Decision] | Sequence[Outcome],
        encode: Callable[[Any], bytes],
    ) -> AppendResult:
        if not records:
            return AppendResult(0, 0)
        keys = self.config.keys
        parts = self.config.partitions
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for record in records:
            by_partition[partition_of(record.event_id, parts)].append(record)
        # Encoded once, outside the retry: a retry resends the same bytes.
        entries = [(keys[p], encode(group)) for p, group in sorted(by_partition.items())]

        def send() -> None:
            pipe = self._client.pipeline(transaction=False)
            for key, payload in entries:
                pipe.xadd(key, {field: payload})
            pipe.execute()

        def count(_: BaseException) -> None:
            self.retries += 1

        retrying(send, seconds=self.config.retry_seconds, on_retry=count)
        return AppendResult(len(records), 0)

    def close(self) -> None:
        self._client.close()
