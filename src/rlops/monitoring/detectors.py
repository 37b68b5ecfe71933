"""Detectors: pure functions from window totals to the numbers alerts compare.

Each takes counts or arrays (from :mod:`rlops.monitoring.window`, a snapshot or a test)
and returns typed results; none holds state, reads a clock or knows about Prometheus.
Keys are bounded labels (arm, segment, action, policy version), never unit ids.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from rlops.core.errors import ValidationError
from rlops.core.records import Example
from rlops.monitoring.window import Moments
from rlops.policies.contract import kl_divergence

F64 = npt.NDArray[np.float64]
ActionKey = tuple[str, str, str]  # (arm, segment, action)
SegmentKey = tuple[str, str]  # (arm, segment)
VersionArm = tuple[str, str]  # (policy_version, arm)
K = TypeVar("K", bound=Hashable)


def _positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number, got {value!r}", field=name)
    if value < 0 or (value == 0 and not allow_zero):
        raise ValidationError(f"{name} must be {'>=' if allow_zero else '>'} 0", field=name)
    return float(value)


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be an integer >= 1, got {value!r}", field=name)
    return value


# -- action shares ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopShare:
    """The most frequent action of one (arm, segment) and its share of ``n`` decisions."""

    action: str
    share: float
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "share": self.share, "n": self.n}


def action_shares(counts: Mapping[ActionKey, int]) -> dict[SegmentKey, TopShare]:
    """The top action per (arm, segment) from decision counts per (arm, segment, action).

    Ties go to the action id that sorts first, so the answer never depends on the
    order of ``counts``.
    """
    totals: dict[SegmentKey, int] = {}
    best: dict[SegmentKey, tuple[int, str]] = {}
    for key, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValidationError(f"count for {key!r} must be an integer >= 0", field="counts")
        arm, segment, action = key
        group = (arm, segment)
        totals[group] = totals.get(group, 0) + int(n)
        held = best.get(group)
        if held is None or n > held[0] or (n == held[0] and action < held[1]):
            best[group] = (int(n), action)
    return {
        group: TopShare(action, top / totals[group], totals[group])
        for group, (top, action) in sorted(best.items())
        if totals[group] > 0
    }


def mode_collapse(
    shares: Mapping[SegmentKey, TopShare], *, threshold: float = 0.8, min_count: int = 100
) -> dict[SegmentKey, TopShare]:
    """The (arm, segment)s whose top action has at least ``threshold`` of ``min_count``
    or more decisions: the policy answers most of a segment with one action.

    ``min_count`` keeps a quiet segment (5 decisions, 4 alike) from alerting. An arm that
    serves deterministic rules concentrates by design; alert rules give it its own
    threshold or leave it out.
    """
    if not (isinstance(threshold, int | float) and 0.0 < threshold <= 1.0):
        raise ValidationError(f"threshold must be in (0, 1], got {threshold!r}", field="threshold")
    _count(min_count, "min_count")
    return {
        key: top for key, top in shares.items() if top.n >= min_count and top.share >= threshold
    }


# -- divergence from the baseline ---------------------------------------------------------


def _probabilities(probs: npt.ArrayLike, name: str) -> F64:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] == 0:
        raise ValidationError(f"{name} must be a (n, k) matrix, got shape {p.shape}", field=name)
    if not (p >= 0.0).all():  # NaN fails this too; inf fails the sums below
        raise ValidationError(f"{name} must hold finite probabilities >= 0", field=name)
    if not (np.abs(p.sum(axis=1) - 1.0) <= 1e-6).all():
        raise ValidationError(f"{name}: every row must sum to 1", field=name)
    return p


def kl_rows(served: npt.ArrayLike, baseline: npt.ArrayLike, *, eps: float = 1e-6) -> F64:
    """``(n,)`` ``KL(served || baseline)`` per row, in nats.

    The baseline is smoothed to ``(q + eps) / (1 + k eps)`` first: rule engines are
    one-hot, and the unsmoothed KL of anything else from them is infinite, which no
    alert threshold can use. ``eps = 0`` gives the exact KL, ``inf`` included.
    """
    p = _probabilities(served, "served_probs")
    q = _probabilities(baseline, "baseline_probs")
    if p.shape != q.shape:
        raise ValidationError(
            f"baseline_probs has shape {q.shape}, served_probs {p.shape}", field="baseline_probs"
        )
    _positive(eps, "eps", allow_zero=True)
    smoothed = (q + eps) / (1.0 + q.shape[1] * eps)
    return kl_divergence(p, smoothed)


def kl_divergence_rows(
    served: npt.ArrayLike, baseline: npt.ArrayLike, *, eps: float = 1e-6
) -> float:
    """The mean over rows of :func:`kl_rows`: how far serving moved from the baseline."""
    rows = kl_rows(served, baseline, eps=eps)
    return float(rows.mean()) if rows.size else 0.0


# -- feature drift ------------------------------------------------------------------------


def _counts(values: npt.ArrayLike, name: str) -> F64:
    c = np.asarray(values, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValidationError(f"{name} must be a non-empty 1-d vector of counts", field=name)
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValidationError(f"{name} must hold finite counts >= 0", field=name)
    if c.sum() <= 0:
        raise ValidationError(f"{name} must count at least one row", field=name)
    return c


def psi(
    expected_counts: npt.ArrayLike, actual_counts: npt.ArrayLike, *, eps: float = 1e-4
) -> float:
    """Population Stability Index ``sum_i (a_i - e_i) ln(a_i / e_i)`` over bin shares.

    ``e`` and ``a`` are the bins' shares of the reference and the window, each floored at
    ``eps`` (not renormalised) so an empty bin on one side is finite. 0 means the same
    distribution; by the usual reading, < 0.1 is stable, 0.1-0.25 a shift to look at,
    > 0.25 a major shift. PSI is the symmetrised KL, so it is never negative.
    """
    e = _counts(expected_counts, "expected_counts")
    a = _counts(actual_counts, "actual_counts")
    if a.shape != e.shape:
        raise ValidationError(
            f"actual_counts has {a.size} bins, expected_counts {e.size}", field="actual_counts"
        )
    floor = _positive(eps, "eps")
    e_share = np.maximum(e / e.sum(), floor)
    a_share = np.maximum(a / a.sum(), floor)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def feature_drift(
    reference_counts: Mapping[str, npt.ArrayLike],
    window_counts: Mapping[str, npt.ArrayLike],
    *,
    eps: float = 1e-4,
    min_count: int = 1,
) -> dict[str, float]:
    """PSI per feature of the window's bin counts against the reference's.

    Features with fewer than ``min_count`` rows in the window are left out: PSI of a
    handful of rows is noise (its expectation is about ``bins / n`` for no drift).
    """
    _count(min_count, "min_count")
    out: dict[str, float] = {}
    for name, counts in window_counts.items():
        if name not in reference_counts:
            raise ValidationError(
                f"feature {name!r} has no reference bins", field=f"window_counts.{name}"
            )
        window = np.asarray(counts, dtype=np.float64)
        if window.ndim == 1 and window.sum() < min_count:
            continue
        try:
            out[name] = psi(reference_counts[name], counts, eps=eps)
        except ValidationError as error:
            raise ValidationError(
                f"feature {name!r}: {error.message}", field=f"window_counts.{name}"
            ) from None
    return out


# -- state coverage -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Coverage:
    """Where the window's rows fall on the reference's joint grid.

    ``unseen_share``: the share of the window's ``rows`` in cells the training snapshot
    never occupied, where the policy extrapolates. This is the one to alert on: it is a
    share of traffic, so it means the same for a quiet window and a busy one.
    ``reference_coverage``: the share of the snapshot's occupied cells that the window
    visited. It grows with traffic, so it reads as "how much of what we trained on is
    being exercised", not as a health signal.
    """

    rows: int
    unseen_share: float
    reference_coverage: float

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "unseen_share": self.unseen_share,
            "reference_coverage": self.reference_coverage,
        }


def state_coverage(
    reference_cells: npt.ArrayLike,
    window_cells: npt.ArrayLike,
    window_counts: npt.ArrayLike | None = None,
) -> Coverage:
    """Coverage of ``window_cells`` (one per row, or with ``window_counts`` rows each)
    against the cells the reference occupied (both from one :class:`JointGrid`)."""
    ref = np.unique(np.asarray(reference_cells))
    cells = np.asarray(window_cells)
    if ref.ndim != 1 or not (ref.size == 0 or np.issubdtype(ref.dtype, np.integer)):
        raise ValidationError("reference_cells must be integer cell ids", field="reference_cells")
    if cells.ndim != 1 or not (cells.size == 0 or np.issubdtype(cells.dtype, np.integer)):
        raise ValidationError("window_cells must be integer cell ids", field="window_cells")
    if window_counts is None:
        counts = np.ones(cells.size)
    else:
        counts = np.asarray(window_counts, dtype=np.float64)
        if counts.shape != cells.shape or np.any(~np.isfinite(counts)) or np.any(counts < 0):
            raise ValidationError(
                "window_counts must be counts >= 0, one per window cell", field="window_counts"
            )
    rows = float(counts.sum())
    seen = np.isin(cells, ref)
    visited = np.unique(cells[seen & (counts > 0)])
    return Coverage(
        rows=round(rows),
        unseen_share=float(counts[~seen].sum() / rows) if rows > 0 else 0.0,
        reference_coverage=float(visited.size / ref.size) if ref.size else 0.0,
    )


# -- rewards and the join -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RewardStats:
    """Mean reward of ``n`` examples, its sample std, and a normal interval on the mean.

    With fewer than 2 examples the interval is unbounded: one reward says nothing about
    the spread.
    """

    n: int
    mean: float
    std: float
    low: float
    high: float

    @classmethod
    def of(cls, moments: Moments, z: float = 1.96) -> RewardStats:
        if moments.n < 2:
            return cls(moments.n, moments.mean, 0.0, -math.inf, math.inf)
        half = z * moments.std / math.sqrt(moments.n)
        return cls(moments.n, moments.mean, moments.std, moments.mean - half, moments.mean + half)

    def to_json(self) -> dict[str, Any]:
        finite = math.isfinite(self.low)
        return {
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "low": self.low if finite else None,
            "high": self.high if finite else None,
        }


def reward_summary(
    examples: Iterable[Example], *, z: float = 1.96
) -> dict[VersionArm, RewardStats]:
    """Reward statistics per ``(policy_version, arm)`` of the examples given.

    Pass one reward version's current examples: rewards of different specs are on
    different scales, and two revisions of one decision would count it twice.
    """
    _positive(z, "z")
    groups: dict[VersionArm, list[float]] = {}
    for e in examples:
        groups.setdefault((e.policy_version, e.arm), []).append(e.reward)
    out: dict[VersionArm, RewardStats] = {}
    for key in sorted(groups):
        r = np.asarray(groups[key])
        std = float(r.std(ddof=1)) if r.size > 1 else 0.0
        out[key] = RewardStats.of(Moments(int(r.size), float(r.mean()), std), z)
    return out


@dataclass(frozen=True, slots=True)
class RewardDrop:
    """Current minus previous mean reward, with a normal interval (unequal variances)."""

    current: RewardStats
    previous: RewardStats
    difference: float
    low: float
    high: float
    dropped: bool


def reward_drop(
    current: Mapping[K, RewardStats],
    previous: Mapping[K, RewardStats],
    *,
    min_n: int = 30,
    z: float = 1.96,
    min_drop: float = 0.0,
) -> dict[K, RewardDrop]:
    """For each key in both with ``min_n`` examples on each side, whether reward fell.

    ``dropped`` when the whole interval of the difference lies below ``-min_drop``: the
    fall is both significant at ``z`` and larger than ``min_drop`` in reward units.
    Compare windows of one version, or re-key versions by arm to compare a new version
    with the one it replaced.
    """
    if _count(min_n, "min_n") < 2:
        raise ValidationError("min_n must be >= 2: an interval needs two rewards", field="min_n")
    _positive(z, "z")
    _positive(min_drop, "min_drop", allow_zero=True)
    out: dict[K, RewardDrop] = {}
    for key, now in current.items():
        before = previous.get(key)
        if before is None or now.n < min_n or before.n < min_n:
            continue
        difference = now.mean - before.mean
        half = z * math.sqrt(now.std**2 / now.n + before.std**2 / before.n)
        low, high = difference - half, difference + half
        out[key] = RewardDrop(now, before, difference, low, high, high < -min_drop)
    return out


def join_lag(pending_ts: npt.ArrayLike, now: float, window_seconds: float) -> float:
    """Seconds by which the oldest pending decision is past its reward window (0 if none).

    A decision waits ``window_seconds`` for outcomes by design; beyond that it should
    have been joined, so this is how far the joiner is behind.
    """
    ts = np.asarray(pending_ts, dtype=np.float64)
    if ts.ndim != 1 or not np.all(np.isfinite(ts)):
        raise ValidationError("pending_ts must be a 1-d vector of finite times", field="pending_ts")
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise ValidationError(f"now must be a finite time, got {now!r}", field="now")
    _positive(window_seconds, "window_seconds", allow_zero=True)
    if ts.size == 0:
        return 0.0
    return max(0.0, float(now) - (float(ts.min()) + window_seconds))
