"""The serving side of an alias: one loaded policy answering, its predecessor kept warm.

A :class:`PolicyHandle` switches blue-green. The new version is loaded and verified
beside the one serving (decisions go on meanwhile), its serving stack is built, and then
one attribute assignment swaps them: CPython makes a reference assignment atomic, so a
decision sees the old pair or the new pair, never a mix. The replaced version stays
loaded, so switching back to it (a rollback) is the swap alone. A load that fails in any
way leaves the serving version untouched and counts on an alert counter.

Every answer comes back as :class:`Served`: the result *and* the loaded policy that
produced it, taken from one read of the slot. A caller that logs ``served.version``
logs the version that really decided, even if a swap lands between two lines of its
code; reading ``handle.current.version`` separately would not be.

This module imports numpy and the policy artifact only: no torch on the serving path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from rlops.core.actions import ActionCatalog
from rlops.policies.artifact import LoadedPolicy
from rlops.policies.contract import Features, Probs
from rlops.policies.stack import Decisions, PolicyStack
from rlops.registry.records import AliasRecord

if TYPE_CHECKING:
    from rlops.registry.registry import Registry

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Metric names, defined once (the metrics module registers counters under these).
LOAD_FAILURES_METRIC = "rlops_policy_load_failures_total"
SWAPS_METRIC = "rlops_policy_swaps_total"


class Counter(Protocol):
    """The one call the handle makes on a metric (a prometheus_client Counter fits)."""

    def inc(self, amount: float = 1.0) -> None: ...


class LocalCounter:
    """A thread-safe in-process counter, the default until a metrics registry is wired."""

    def __init__(self) -> None:
        self._value = 0.0
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self._value += amount

    @property
    def value(self) -> float:
        return self._value


@dataclass(frozen=True, slots=True)
class Served(Generic[T]):
    """A result and the loaded policy that produced it."""

    policy: LoadedPolicy
    result: T

    @property
    def version(self) -> str:
        return self.policy.version


@dataclass(frozen=True, eq=False, slots=True)
class _Slot:
    loaded: LoadedPolicy
    stack: PolicyStack


StackFactory = Callable[[LoadedPolicy], PolicyStack]


def plain_stack(loaded: LoadedPolicy) -> PolicyStack:
    """The policy alone: no masks, exploration or trust region."""
    return PolicyStack(policy=loaded.policy, schema=loaded.manifest.feature_schema)


class PolicyHandle:
    """Serves one alias; ``loader(version)`` must return a verified :class:`LoadedPolicy`."""

    def __init__(
        self,
        loader: Callable[[str], LoadedPolicy],
        initial: LoadedPolicy,
        *,
        stack_factory: StackFactory = plain_stack,
        load_failures: Counter | None = None,
        swaps: Counter | None = None,
        revision: int = 0,
    ) -> None:
        self._loader = loader
        self._stack_factory = stack_factory
        self._slot = _Slot(initial, stack_factory(initial))
        self._previous: _Slot | None = None
        self._switching = threading.Lock()
        self._revision = revision
        self.load_failures: Counter = load_failures if load_failures is not None else LocalCounter()
        self.swaps: Counter = swaps if swaps is not None else LocalCounter()
        self.last_error: str | None = None

    @classmethod
    def open(cls, registry: Registry, name: str, alias: str, **kwargs: Any) -> PolicyHandle:
        """A handle serving ``registry``'s current ``alias`` of ``name``, loaded now."""
        record = registry.require_alias(name, alias)
        return cls(
            lambda version: registry.load(name, version),
            registry.load(name, record.version),
            revision=record.revision,
            **kwargs,
        )

    # -- serving: one read of the slot per call -------------------------------------------

    @property
    def current(self) -> LoadedPolicy:
        """The policy serving now (for display; decisions use :meth:`run` and friends)."""
        return self._slot.loaded

    @property
    def previous(self) -> LoadedPolicy | None:
        slot = self._previous
        return slot.loaded if slot is not None else None

    def run(self, work: Callable[[LoadedPolicy], T]) -> Served[T]:
        """``work`` on the serving policy, returned with that policy."""
        slot = self._slot
        return Served(slot.loaded, work(slot.loaded))

    def probabilities(self, features: Features, actions: ActionCatalog) -> Served[Probs]:
        slot = self._slot
        return Served(slot.loaded, slot.loaded.policy.probabilities(features, actions))

    def decide(
        self,
        features: Features,
        actions: ActionCatalog,
        rng: np.random.Generator,
        unit_ids: Sequence[str] | None = None,
        ts: Sequence[float] | None = None,
    ) -> Served[Decisions]:
        """Decisions from the serving version's stack (masks, exploration, trust region)."""
        slot = self._slot
        return Served(slot.loaded, slot.stack.decide(features, actions, rng, unit_ids, ts))

    # -- switching ------------------------------------------------------------------------

    def switch_to(self, version: str, *, revision: int | None = None) -> bool:
        """Serve ``version``: load and verify it beside the current one, then swap.

        ``revision`` is the alias revision that asked for it; an older one than the last
        applied is ignored (notifications can arrive out of order). Returns whether
        ``version`` serves now; on a failed load the current version keeps serving.
        """
        with self._switching:
            if revision is not None and revision < self._revision:
                return False
            slot, previous = self._slot, self._previous
            if slot.loaded.version == version:
                self._revision = max(self._revision, revision or 0)
                return True
            if previous is not None and previous.loaded.version == version:
                new = previous  # kept warm for exactly this: the swap alone
            else:
                try:
                    loaded = self._loader(version)
                    new = _Slot(loaded, self._stack_factory(loaded))
                except Exception as error:  # whatever broke, keep serving what works
                    self.load_failures.inc()
                    self.last_error = f"{version}: {type(error).__name__}: {error}"
                    log.warning("keeping %s: loading %s failed", slot.loaded.version, version)
                    return False
            self._previous = slot
            self._slot = new
            self._revision = max(self._revision, revision or 0)
            self.swaps.inc()
            return True

    def on_alias(self, record: AliasRecord) -> None:
        """The watcher callback: follow the alias to wherever it points now."""
        self.switch_to(record.version, revision=record.revision)

    def rollback(self) -> bool:
        """Swap back to the previous version locally (it is still loaded).

        For an emergency without the registry; a watcher that follows the alias puts the
        handle back where the alias points at its next resync, so roll the alias back too.
        """
        with self._switching:
            previous = self._previous
            if previous is None:
                return False
            self._previous, self._slot = self._slot, previous
            self.swaps.inc()
            return True
