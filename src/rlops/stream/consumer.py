"""Reading the partition streams as one consumer of a consumer group.

A cycle is: :meth:`RedisConsumer.read` (entries left pending by a consumer idle for
longer than ``claim_idle`` are claimed first — a worker killed mid-batch leaves its
entries to the others — then new ones), the caller commits the records to the log, then
:meth:`RedisConsumer.ack`. Acknowledging only after the log commit means a crash at any
point leaves the entries pending, to be claimed and appended again (idempotently).

An entry that does not decode is not retried forever nor dropped: :meth:`ack` copies it
to ``{stream}:dead`` with the error and then acknowledges it; :attr:`dead_letters` counts
them. :meth:`trim` removes what every group has acknowledged, so streams stay bounded.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from rlops.core.records import Decision, Outcome
from rlops.stream.codec import UndecodableError, decode_entry
from rlops.stream.config import StreamConfig
from rlops.stream.redis_client import check_persistence, connect, retrying

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: str
    entry_id: bytes
    fields: dict[bytes, bytes]
    error: str


@dataclass(slots=True)
class Batch:
    """The records of one read, and the entry ids to acknowledge once they are logged.

    Entries are read raw and decoded by :meth:`decode`, so a reader thread can fetch the
    next batch while the worker's thread decodes: decoding holds the GIL, and done on the
    reader thread it kept the worker's SQLite calls waiting for it.
    """

    decisions: list[Decision] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    ids: dict[str, list[bytes]] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    claimed: int = 0
    raw: list[tuple[str, bytes, dict[bytes, bytes]]] = field(default_factory=list)

    @property
    def entries(self) -> int:
        return sum(len(ids) for ids in self.ids.values())

    def decode(self) -> Batch:
        """Decode the raw entries into records and dead letters (once; returns self)."""
        for key, entry_id, fields in self.raw:
            try:
                decoded = decode_entry(fields)
            except UndecodableError as error:
                self.dead.append(DeadLetter(key, entry_id, dict(fields), error.message))
                continue
            for record in decoded.records:
                if isinstance(record, Decision):
                    self.decisions.append(record)
                else:
                    self.outcomes.append(record)
            for index, why in decoded.refused:
                self.dead.append(DeadLetter(key, entry_id, dict(fields), f"record {index}: {why}"))
        self.raw = []
        return self


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisConsumer:
    """One member of the join workers' consumer group, over every partition stream."""

    def __init__(
        self,
        config: StreamConfig,
        *,
        name: str | None = None,
        client: redis.Redis[bytes] | None = None,
        block_ms: int = 500,
    ) -> None:
        self.config = config
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.block_ms = block_ms
        self._client = client or connect(config)
        self._claim_from = dict.fromkeys(config.keys, b"0-0")
        self._last_claim = -math.inf
        self.dead_letters = 0
        self.claimed = 0
        self.group_created = 0
        self.reconnects = 0
        try:
            self.persistence = self._retry(lambda: check_persistence(self._client, config))
            self.ensure_groups()
        except BaseException:
            self._client.close()
            raise

    # ------------------------------------------------------------------ plumbing

    def _retry(self, operation: Callable[[], T]) -> T:
        """Retry through outages; recreate the group if Redis lost it (NOGROUP)."""

        def count(_: BaseException) -> None:
            self.reconnects += 1

        def attempt() -> T:
            try:
                return operation()
            except redis.ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise
                log.warning("consumer group %s missing; recreating it from 0", self.config.group)
                self.ensure_groups()
                return operation()

        return retrying(attempt, seconds=self.config.retry_seconds, on_retry=count)

    def ensure_groups(self) -> None:
        """Create the group on every partition stream (from id 0) where it is missing."""
        for key in self.config.keys:
            try:
                self._client.xgroup_create(key, self.config.group, id="0", mkstream=True)
                self.group_created += 1
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    # ------------------------------------------------------------------ reading

    def read(self, count: int = 1000, *, block: bool = True, decode: bool = True) -> Batch:
        """Up to about ``count`` entries: stale pending ones first, then new ones.

        With ``decode=False`` the entries stay raw until :meth:`Batch.decode`."""
        batch = Batch()
        now = time.monotonic()
        if now - self._last_claim >= min(1.0, self.config.claim_idle / 4):
            self._last_claim = now
            self._retry(lambda: self._claim(batch, count))
        if batch.entries < count:
            per_stream = max(1, math.ceil((count - batch.entries) / self.config.partitions))
            wait = self.block_ms if block and batch.entries == 0 else None
            self._retry(lambda: self._read_new(batch, per_stream, wait))
        return batch.decode() if decode else batch

    def _claim(self, batch: Batch, count: int) -> None:
        idle_ms = int(self.config.claim_idle * 1000)
        pipe = self._client.pipeline(transaction=False)
        keys = self.config.keys
        for key in keys:
            pipe.xautoclaim(
                key, self.config.group, self.name, idle_ms, self._claim_from[key], count
            )
        for key, reply in zip(keys, pipe.execute(), strict=True):
            cursor, entries = reply[0], reply[1]
            self._claim_from[key] = cursor
            self._take(batch, key, entries)
            batch.claimed += len(entries)
        self.claimed += batch.claimed

    def _read_new(self, batch: Batch, per_stream: int, block_ms: int | None) -> None:
        streams = dict.fromkeys(self.config.keys, ">")
        reply = self._client.xreadgroup(
            self.config.group, self.name, streams, count=per_stream, block=block_ms
        )
        for key, entries in reply or []:
            self._take(batch, _text(key), entries)

    def _take(self, batch: Batch, key: str, entries: list[Any]) -> None:
        ids = batch.ids.setdefault(key, [])
        for entry_id, fields in entries:
            ids.append(entry_id)
            if fields:  # empty: the entry was trimmed or deleted while pending
                batch.raw.append((key, entry_id, fields))

    # ------------------------------------------------------------------ acknowledging

    def ack(self, batch: Batch) -> None:
        """Dead-letter what did not decode, then acknowledge every entry of ``batch``."""
        if not batch.ids:
            return

        def send() -> None:
            pipe = self._client.pipeline(transaction=False)
            for dead in batch.dead:
                pipe.xadd(
                    self.config.dead_key,
                    {
                        b"error": dead.error.encode(),
                        b"source": dead.key.encode(),
                        b"id": dead.entry_id,
                        **{b"raw:" + k: v for k, v in dead.fields.items()},
                    },
                )
            for key, ids in batch.ids.items():
                if ids:
                    pipe.xack(key, self.config.group, *ids)
            pipe.execute()

        self._retry(send)
        self.dead_letters += len(batch.dead)

    def pending(self) -> int:
        """Entries delivered to some consumer of the group and not yet acknowledged."""

        def send() -> int:
            pipe = self._client.pipeline(transaction=False)
            for key in self.config.keys:
                pipe.xpending(key, self.config.group)
            return sum(int(reply["pending"]) for reply in pipe.execute())

        return self._retry(send)

    def backlog(self) -> int:
        """Entries no consumer of the group has been given yet (``lag``, Redis >= 7)."""

        def send() -> int:
            pipe = self._client.pipeline(transaction=False)
            for key in self.config.keys:
                pipe.xinfo_groups(key)
            total = 0
            for groups in pipe.execute():
                for group in groups:
                    if _text(group["name"]) == self.config.group:
                        total += int(group.get("lag") or 0)
            return total

        return self._retry(send)

    def trim(self) -> int:
        """Remove entries every group has acknowledged; return how many went.

        Per stream, keep everything from the oldest entry still pending in any group, or
        else from each group's last delivered entry (entries after it were never read).
        """

        def send() -> int:
            removed = 0
            for key in self.config.keys:
                floor: tuple[int, int] | None = None
                for group in self._client.xinfo_groups(key):  # type: ignore[no-untyped-call]  # untyped in types-redis
                    if int(group["pending"]):
                        low = self._client.xpending(key, group["name"])["min"]  # type: ignore[no-untyped-call]  # untyped in types-redis
                    else:
                        low = group["last-delivered-id"]
                    parsed = tuple(int(p) for p in _text(low).split("-"))
                    floor = parsed if floor is None else min(floor, parsed)  # type: ignore[assignment]  # two ints
                if floor is not None and floor > (0, 0):
                    removed += int(
                        self._client.xtrim(key, minid=f"{floor[0]}-{floor[1]}", approximate=False)
                    )
            return removed

        return self._retry(send)

    def close(self) -> None:
        self._client.close()
