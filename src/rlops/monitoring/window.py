"""Rolling windows: time-bucketed sums over the last few minutes, with bounded memory.

A window is a ring of ``buckets`` time buckets of ``bucket_seconds`` each (15 one-minute
buckets by default). Adding at time ``t`` lands in bucket ``floor(t / bucket_seconds)``;
a total at time ``now`` sums the buckets in ``(current - buckets, current]``, so it
covers between ``(buckets - 1) * bucket_seconds`` and ``buckets * bucket_seconds`` of
history and old buckets roll off without any timer. An add for a bucket that has
already rolled off is dropped and counted in ``stale``.

Memory is ``O(keys * buckets * channels)`` and keys are capped at ``max_keys``. A key
that arrives when the table is full first reclaims keys that saw nothing in the window;
if none are free it is counted under ``other``. So whatever the caller passes as keys
(even, by mistake, 100,000 distinct unit ids) the memory stays bounded, and the
overflow is visible rather than silent.

Time comes from an injected :class:`~rlops.core.clock.Clock` unless ``now`` is given.
Every structure takes a lock: the server's event loop adds while a scrape reads.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from rlops.core.clock import Clock, RealClock
from rlops.core.errors import ValidationError

K = TypeVar("K", bound=Hashable)
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """``buckets`` buckets of ``bucket_seconds``; at most ``max_keys`` keys besides other."""

    bucket_seconds: float = 60.0
    buckets: int = 15
    max_keys: int = 1024

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bucket_seconds) and self.bucket_seconds > 0):
            raise ValidationError(
                f"bucket_seconds must be finite and > 0, got {self.bucket_seconds!r}",
                field="bucket_seconds",
            )
        if isinstance(self.buckets, bool) or not isinstance(self.buckets, int):
            raise ValidationError("buckets must be an integer", field="buckets")
        if not 1 <= self.buckets <= 10_000:
            raise ValidationError(
                f"buckets must be in [1, 10000], got {self.buckets}", field="buckets"
            )
        if isinstance(self.max_keys, bool) or not isinstance(self.max_keys, int):
            raise ValidationError("max_keys must be an integer", field="max_keys")
        if not 1 <= self.max_keys <= 1_000_000:
            raise ValidationError(
                f"max_keys must be in [1, 1000000], got {self.max_keys}", field="max_keys"
            )

    @property
    def seconds(self) -> float:
        """The nominal span of the window."""
        return self.bucket_seconds * self.buckets

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket_seconds": self.bucket_seconds,
            "buckets": self.buckets,
            "max_keys": self.max_keys,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WindowConfig:
        return cls(
            bucket_seconds=float(data.get("bucket_seconds", 60.0)),
            buckets=int(data.get("buckets", 15)),
            max_keys=int(data.get("max_keys", 1024)),
        )


def _check_now(now: float) -> float:
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise ValidationError(f"now must be a finite number of seconds, got {now!r}", field="now")
    return float(now)


class _Ring:
    """``rows x buckets x channels`` sums in a ring of time buckets (not thread-safe)."""

    def __init__(self, config: WindowConfig, rows: int, channels: int) -> None:
        self.config = config
        self.channels = channels
        self.data = np.zeros((rows, config.buckets, channels))
        self.bucket_of = np.full(config.buckets, np.iinfo(np.int64).min, dtype=np.int64)
        self.latest: int | None = None
        self.stale = 0

    def bucket(self, now: float) -> int:
        return math.floor(now / self.config.bucket_seconds)

    def slot(self, now: float) -> int | None:
        """The ring slot for time ``now``, cleared if it held an older bucket; None if stale."""
        bucket = self.bucket(now)
        n = self.config.buckets
        if self.latest is not None and bucket <= self.latest - n:
            return None
        # A slot holds a bucket congruent to ``bucket`` and at most ``latest``, so it is
        # this bucket or an older one to clear (see the module docstring).
        slot = bucket % n
        if self.bucket_of[slot] != bucket:
            self.data[:, slot, :] = 0.0
            self.bucket_of[slot] = bucket
        if self.latest is None or bucket > self.latest:
            self.latest = bucket
        return slot

    def live(self, current: int) -> npt.NDArray[np.bool_]:
        """Which slots hold a bucket inside the window ending with bucket ``current``."""
        out: npt.NDArray[np.bool_] = (self.bucket_of > current - self.config.buckets) & (
            self.bucket_of <= current
        )
        return out

    def sums(self, now: float) -> F64:
        """``(rows, channels)`` sums over the window ending at ``now``."""
        out: F64 = self.data[:, self.live(self.bucket(now)), :].sum(axis=1)
        return out

    def grow(self, rows: int) -> None:
        extra = np.zeros((rows - len(self.data), self.config.buckets, self.channels))
        self.data = np.concatenate([self.data, extra])


@dataclass(frozen=True, slots=True)
class WindowSums(Generic[K]):
    """Per-key sums over a window (``(channels,)`` each); ``other`` sums overflowed keys.

    ``dropped_keys`` counts rows whose key found the table full and ``stale`` rows added
    for a bucket that had already rolled off, both since the window was created.
    """

    sums: dict[K, F64]
    other: F64
    dropped_keys: int
    stale: int


@dataclass(frozen=True, slots=True)
class WindowCounts(Generic[K]):
    """Per-key counts over a window; ``other`` counts rows whose key overflowed the cap."""

    counts: dict[K, int]
    other: int
    stale: int

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.other


class RollingSums(Generic[K]):
    """Sums of ``channels`` floats per key over a rolling window.

    Row 0 of the ring is the ``other`` key. Keys are never evicted while they have
    something in the window, so a key's sums are never split between it and ``other``
    except when the table was full when it first arrived.
    """

    def __init__(
        self, channels: int, config: WindowConfig | None = None, clock: Clock | None = None
    ) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValidationError(
                f"channels must be an integer >= 1, got {channels!r}", field="channels"
            )
        self.config = config if config is not None else WindowConfig()
        self.clock: Clock = clock if clock is not None else RealClock()
        self.channels = channels
        self._ring = _Ring(self.config, min(self.config.max_keys, 16) + 1, channels)
        self._rows: dict[K, int] = {}
        self._free: list[int] = []
        self._next_row = 1
        self._swept_at: int | None = None
        self._dropped = 0
        self._lock = threading.Lock()

    @property
    def n_keys(self) -> int:
        return len(self._rows)

    @property
    def nbytes(self) -> int:
        """Bytes held by the ring's array (the part that scales with keys)."""
        return int(self._ring.data.nbytes)

    def _row(self, key: K) -> int:
        row = self._rows.get(key)
        if row is not None:
            return row
        if self._free:
            row = self._free.pop()
        elif self._next_row <= self.config.max_keys:
            row = self._next_row
            self._next_row += 1
            if row >= len(self._ring.data):
                self._ring.grow(min(2 * len(self._ring.data), self.config.max_keys + 1))
        else:
            self._dropped += 1
            return 0
        self._rows[key] = row
        return row

    def _sweep(self) -> None:
        """Free the rows of keys with nothing in the window; at most once per bucket."""
        latest = self._ring.latest
        if latest is None or latest == self._swept_at:
            return
        self._swept_at = latest
        live = self._ring.live(latest)
        empty: npt.NDArray[np.bool_] = (
            np.abs(self._ring.data[:, live, :]).max(axis=(1, 2), initial=0.0) == 0.0
        )
        for key, row in list(self._rows.items()):
            if empty[row]:
                del self._rows[key]
                self._ring.data[row] = 0.0
                self._free.append(row)

    def add(
        self,
        keys: Sequence[K],
        values: npt.ArrayLike,
        now: float | None = None,
    ) -> None:
        """Add row ``i`` of ``values (n, channels)`` (or ``(n,)`` for one channel) to key i."""
        array = np.asarray(values, dtype=np.float64)
        if array.ndim == 1 and self.channels == 1:
            array = array[:, None]
        if array.shape != (len(keys), self.channels):
            raise ValidationError(
                f"values must have shape ({len(keys)}, {self.channels}), got {array.shape}",
                field="values",
            )
        if not np.all(np.isfinite(array)):
            raise ValidationError("values must be finite", field="values")
        when = _check_now(self.clock.now() if now is None else now)
        with self._lock:
            slot = self._ring.slot(when)
            if slot is None:
                self._ring.stale += len(keys)
                return
            get = self._rows.get
            found = [get(k, -1) for k in keys]
            if -1 in found:  # a new key (rare): register it
                if not self._free and self._next_row > self.config.max_keys:
                    # before this batch registers anything, so none of its keys is freed
                    self._sweep()
                found = [self._row(k) if r == -1 else r for k, r in zip(keys, found, strict=True)]
            rows = np.asarray(found, dtype=np.intp)
            if self.channels == 1:
                column = self._ring.data[:, slot, 0]
                column += np.bincount(rows, weights=array[:, 0], minlength=len(column))
            else:
                np.add.at(self._ring.data[:, slot, :], rows, array)

    def totals(self, now: float | None = None) -> WindowSums[K]:
        """Each key's sums over the window ending at ``now``; keys at zero are left out."""
        when = _check_now(self.clock.now() if now is None else now)
        with self._lock:
            sums = self._ring.sums(when)
            present: npt.NDArray[np.bool_] = np.abs(sums).max(axis=1) > 0.0
            out = {k: sums[row].copy() for k, row in self._rows.items() if present[row]}
            return WindowSums(out, sums[0].copy(), self._dropped, self._ring.stale)


class RollingCounts(Generic[K]):
    """Counts per key over a rolling window (a one-channel :class:`RollingSums`)."""

    def __init__(self, config: WindowConfig | None = None, clock: Clock | None = None) -> None:
        self._sums: RollingSums[K] = RollingSums(1, config, clock)
        self.config = self._sums.config

    @property
    def n_keys(self) -> int:
        return self._sums.n_keys

    @property
    def nbytes(self) -> int:
        return self._sums.nbytes

    def add(self, keys: Sequence[K], now: float | None = None) -> None:
        """Count each element of ``keys`` once (repeats count repeatedly)."""
        self._sums.add(keys, np.ones(len(keys)), now)

    def totals(self, now: float | None = None) -> WindowCounts[K]:
        sums = self._sums.totals(now)
        counts = {k: round(float(v[0])) for k, v in sums.sums.items()}
        return WindowCounts(counts, round(float(sums.other[0])), sums.stale)


class RollingHistogram:
    """Counts over ``width`` fixed bins (feature bins, reference cells) in a rolling window."""

    def __init__(
        self, width: int, config: WindowConfig | None = None, clock: Clock | None = None
    ) -> None:
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValidationError(f"width must be an integer >= 1, got {width!r}", field="width")
        self.config = config if config is not None else WindowConfig()
        self.clock: Clock = clock if clock is not None else RealClock()
        self.width = width
        self._ring = _Ring(self.config, width, 1)
        self._lock = threading.Lock()

    def add(self, bins: npt.NDArray[np.integer[Any]], now: float | None = None) -> None:
        """Count each bin index in ``bins`` (``(n,)`` integers in ``[0, width)``)."""
        index = np.asarray(bins)
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise ValidationError("bins must be a 1-d integer array", field="bins")
        if index.size and (index.min() < 0 or index.max() >= self.width):
            raise ValidationError(f"bins must lie in [0, {self.width})", field="bins")
        when = _check_now(self.clock.now() if now is None else now)
        counts = np.bincount(index, minlength=self.width).astype(np.float64)
        with self._lock:
            slot = self._ring.slot(when)
            if slot is None:
                self._ring.stale += len(index)
                return
            self._ring.data[:, slot, 0] += counts

    def totals(self, now: float | None = None) -> npt.NDArray[np.int64]:
        """``(width,)`` counts over the window ending at ``now``."""
        when = _check_now(self.clock.now() if now is None else now)
        with self._lock:
            out: npt.NDArray[np.int64] = np.rint(self._ring.sums(when)[:, 0]).astype(np.int64)
            return out

    @property
    def stale(self) -> int:
        return self._ring.stale


@dataclass(frozen=True, slots=True)
class Moments:
    """``n``, mean and sample standard deviation of a stream, from its running sums."""

    n: int
    mean: float
    std: float

    @classmethod
    def of(cls, n: float, total: float, total_sq: float) -> Moments:
        """From ``(n, sum x, sum x^2)``; a negative variance from round-off reads as 0."""
        count = round(n)
        if count <= 0:
            return cls(0, 0.0, 0.0)
        n, total, total_sq = float(n), float(total), float(total_sq)
        mean = total / n
        if count < 2:
            return cls(count, mean, 0.0)
        variance = max(total_sq - n * mean * mean, 0.0) / (n - 1)
        return cls(count, mean, math.sqrt(variance))

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "std": self.std}
