"""Micro-batching on the event loop: the requests of one loop turn decide and commit together.

Each decision request appends itself to a pending list and the first one schedules a
flush with ``call_soon``; the flush runs after every request that arrived in the same
turn has appended, decides them in one :meth:`DecisionService.decide` call (one feature
store round trip, one forward pass per arm) and hands them to the group-commit writer as
one item. Requests wait for their decision, then for the commit, so nothing is
acknowledged before it is durable. Under light load a flush holds one request and adds
nothing; under heavy load the per-request cost of Redis, numpy and SQLite is shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rlops.core.features import FeatureValue
from rlops.core.records import Outcome
from rlops.serving.service import Decided, DecisionService
from rlops.serving.writer import GroupCommitWriter


@dataclass(frozen=True, slots=True)
class _Waiting:
    unit_id: str
    context: Mapping[str, FeatureValue]
    request_id: str | None
    future: asyncio.Future[tuple[Decided, asyncio.Future[None]]]


class DecisionFront:
    """The async face of a service: ``await decide(...)`` returns durable decisions."""

    def __init__(
        self, service: DecisionService, writer: GroupCommitWriter, *, linger: float = 0.0005
    ) -> None:
        """``linger`` seconds: how long a flush waits for more requests to join it."""
        self.service = service
        self.writer = writer
        self.linger = linger
        self._pending: list[_Waiting] = []
        self._scheduled = False
        self.flushes = 0

    async def decide(
        self, requests: Sequence[tuple[str, Mapping[str, FeatureValue], str | None]]
    ) -> list[Decided]:
        loop = asyncio.get_running_loop()
        futures = []
        for unit_id, context, request_id in requests:
            future: asyncio.Future[tuple[Decided, asyncio.Future[None]]] = loop.create_future()
            self._pending.append(_Waiting(unit_id, context, request_id, future))
            futures.append(future)
        if not self._scheduled:
            self._scheduled = True
            if self.linger > 0:
                loop.call_later(self.linger, self._flush)
            else:
                loop.call_soon(self._flush)
        results = [await future for future in futures]
        commits = {id(committed): committed for _, committed in results}
        for committed in commits.values():
            await committed
        return [decided for decided, _ in results]

    async def record_outcomes(self, outcomes: Sequence[Outcome]) -> int:
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.writer.submit("outcomes", outcomes, committed)
        await committed
        self.service.metrics.outcomes.labels(self.service.app).inc(len(outcomes))
        return len(outcomes)

    def _flush(self) -> None:
        self._scheduled = False
        waiting, self._pending = self._pending, []
        if not waiting:
            return
        self.flushes += 1
        try:
            decided = self.service.decide(
                [w.unit_id for w in waiting],
                [w.context for w in waiting],
                [w.request_id for w in waiting],
            )
            committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.writer.submit("decisions", [d.decision for d in decided], committed)
        except BaseException as error:  # refused whole (overload, log down): all 503
            for w in waiting:
                if not w.future.done():
                    w.future.set_exception(error)
            return
        for w, d in zip(waiting, decided, strict=True):
            if not w.future.done():
                w.future.set_result((d, committed))
