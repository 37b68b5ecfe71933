"""The decision monitor: rolling windows over what the server decided.

:class:`DecisionMonitor` takes each micro-batch the server decided and keeps, over the
window (15 minutes in 1-minute buckets by default):

- decisions per (arm, segment, action), hence each segment's top action and its share;
- per arm: decisions, explored and fallback shares, and ``KL(served || baseline)``
  when the server passes both distributions;
- every feature's bin counts against the training :class:`Reference` (PSI), and the
  grid cells the rows fall in (coverage).

:class:`~rlops.monitoring.outcomes.OutcomeMonitor` is its counterpart for the joiner.
Both return frozen snapshots; the detectors turn them into the numbers alerts compare.
Every key is a bounded label from configuration or the schema, and every window caps
its keys, so no unit id or event id ever becomes a key.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from rlops.core.clock import Clock, RealClock
from rlops.core.errors import ValidationError
from rlops.core.features import FeatureSchema
from rlops.core.records import Decision
from rlops.monitoring.bins import prepare_rows
from rlops.monitoring.detectors import (
    ActionKey,
    Coverage,
    SegmentKey,
    TopShare,
    action_shares,
    feature_drift,
    kl_rows,
    state_coverage,
)
from rlops.monitoring.grid import GridFromBins
from rlops.monitoring.reference import Reference
from rlops.monitoring.segments import SegmentConfig, Segmenter
from rlops.monitoring.window import (
    Moments,
    RollingHistogram,
    RollingSums,
    WindowConfig,
)

# Channels of the decision monitor's window, per (arm, segment, action).
_CHANNELS = ("decisions", "explored", "fallback", "kl_rows", "kl", "kl_sq")
_DECISIONS, _EXPLORED, _FALLBACK, _KL_ROWS, _KL, _KL_SQ = range(len(_CHANNELS))
F64 = npt.NDArray[np.float64]


class DecidedLike(Protocol):
    """What the monitor reads of the server's ``Decided`` (kept off the serving package)."""

    @property
    def decision(self) -> Decision: ...

    @property
    def fallback(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """The window, the segment feature, and the detectors' smoothing.

    ``kl_eps`` smooths the baseline (see :func:`kl_rows`; must be > 0 here so a one-hot
    baseline gives a finite mean); ``psi_eps`` floors bin shares; ``psi_min_count`` is
    the fewest rows in the window for a feature's PSI to be reported.
    """

    window: WindowConfig = field(default_factory=WindowConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    kl_eps: float = 1e-6
    psi_eps: float = 1e-4
    psi_min_count: int = 100

    def __post_init__(self) -> None:
        if not (math.isfinite(self.kl_eps) and self.kl_eps > 0):
            raise ValidationError("kl_eps must be finite and > 0", field="kl_eps")
        if not (math.isfinite(self.psi_eps) and self.psi_eps > 0):
            raise ValidationError("psi_eps must be finite and > 0", field="psi_eps")
        if isinstance(self.psi_min_count, bool) or self.psi_min_count < 1:
            raise ValidationError("psi_min_count must be >= 1", field="psi_min_count")


@dataclass(frozen=True, slots=True)
class ArmSummary:
    """One arm over the window: decisions, the shares explored and answered by the
    fallback rules, and the KL to the baseline over the rows that reported it."""

    decisions: int
    explored_share: float
    fallback_share: float
    kl: Moments | None

    def to_json(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "explored_share": self.explored_share,
            "fallback_share": self.fallback_share,
            "kl": None if self.kl is None else self.kl.to_json(),
        }


@dataclass(frozen=True, slots=True)
class MonitorSnapshot:
    """The decision monitor's window at ``at``.

    ``action_counts`` are keyed ``(arm, segment, action)``; ``other_decisions`` counts
    rows whose key found the window's table full (0 unless keys are misconfigured).
    ``psi`` and ``coverage`` are empty / ``None`` without a reference.
    """

    at: float
    window_seconds: float
    decisions: int
    action_counts: dict[ActionKey, int]
    top_shares: dict[SegmentKey, TopShare]
    arms: dict[str, ArmSummary]
    psi: dict[str, float]
    coverage: Coverage | None
    other_decisions: int
    reference: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "window_seconds": self.window_seconds,
            "decisions": self.decisions,
            "action_counts": [
                {"arm": a, "segment": s, "action": x, "count": n}
                for (a, s, x), n in sorted(self.action_counts.items())
            ],
            "top_shares": [
                {"arm": a, "segment": s, **top.to_json()}
                for (a, s), top in sorted(self.top_shares.items())
            ],
            "arms": {name: arm.to_json() for name, arm in sorted(self.arms.items())},
            "psi": dict(sorted(self.psi.items())),
            "coverage": None if self.coverage is None else self.coverage.to_json(),
            "other_decisions": self.other_decisions,
            "reference": self.reference,
        }


class _ReferenceWindows:
    """A reference and the window's feature-bin and grid-cell histograms against it."""

    def __init__(self, reference: Reference, config: WindowConfig, clock: Clock) -> None:
        self.reference = reference
        # Grid features are schema features, so the bins' preparation serves both, and
        # with the default quantiles a row's cell is a lookup from its bins.
        self.features_binned = reference.bins.features
        self.lookup = GridFromBins.of(reference.grid, reference.bins)
        self.bin_counts = RollingHistogram(reference.bins.width, config, clock)
        # One bin per occupied reference cell, and a last one for rows in unseen cells;
        # a grid has at most MAX_CELLS cells (ReferenceConfig.max_cells by default), so a
        # dense map from cell id to histogram bin is one gather per batch.
        unseen = len(reference.cells)
        self.slot_of_cell = np.full(reference.grid.n_cells, unseen, dtype=np.int32)
        self.slot_of_cell[reference.cells] = np.arange(unseen)
        self.cell_counts = RollingHistogram(unseen + 1, config, clock)

    def bins(self, rows: Sequence[Any]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int32]]:
        """Flat feature-bin indices and cell-histogram indices of ``rows``."""
        ref = self.reference
        prepared = prepare_rows(self.features_binned, rows)
        codes = ref.bins.codes(prepared)
        flat = ref.bins.flat(codes)
        cells = ref.grid.cells(prepared) if self.lookup is None else self.lookup.cells(codes)
        return flat, self.slot_of_cell[cells]


class DecisionMonitor:
    """Rolling action shares, exploration, KL, drift and coverage of served decisions.

    The server calls :meth:`observe` once per micro-batch with the ``Decided`` list it
    logged; a scrape or an alert rule calls :meth:`snapshot`. One reference at a time
    (production's training data); :meth:`set_reference` swaps it when production does.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        reference: Reference | None = None,
        config: MonitorConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.schema = schema
        self.config = config if config is not None else MonitorConfig()
        self.clock: Clock = clock if clock is not None else RealClock()
        self.segmenter = Segmenter(self.config.segment, schema)
        window = self.config.window
        # One window keyed (arm, segment, action): action counts are its first channel,
        # and an arm's figures are the sums over its keys.
        self._sums: RollingSums[ActionKey] = RollingSums(len(_CHANNELS), window, self.clock)
        self._reference: _ReferenceWindows | None = None
        self._lock = threading.Lock()
        if reference is not None:
            self.set_reference(reference)

    def set_reference(self, reference: Reference | None) -> None:
        """Compare with ``reference`` from now on (drift and coverage start afresh)."""
        if reference is not None:
            unknown = [n for n in reference.bins.names if n not in self.schema.names]
            if unknown:
                raise ValidationError(
                    f"the reference bins features the schema lacks: {unknown}", field="reference"
                )
        windows = (
            None
            if reference is None
            else _ReferenceWindows(reference, self.config.window, self.clock)
        )
        with self._lock:
            self._reference = windows

    def observe(
        self,
        decided: Sequence[DecidedLike],
        served_probs: npt.ArrayLike | None = None,
        baseline_probs: npt.ArrayLike | None = None,
        now: float | None = None,
    ) -> None:
        """Count one micro-batch.

        ``served_probs`` and ``baseline_probs`` (``(n, k)``, row ``i`` for ``decided[i]``,
        one catalog) are optional and go together: the KL of each row to the baseline.
        A batch whose arms use different catalogs is observed one arm at a time.
        """
        n = len(decided)
        if (served_probs is None) != (baseline_probs is None):
            raise ValidationError(
                "served_probs and baseline_probs go together",
                field="baseline_probs" if baseline_probs is None else "served_probs",
            )
        if n == 0:
            return
        when = self.clock.now() if now is None else now
        decisions = [d.decision for d in decided]
        rows = [d.features for d in decisions]
        arms = [d.arm for d in decisions]
        keys = list(
            zip(arms, self.segmenter.label(rows), [d.action_id for d in decisions], strict=True)
        )
        values = np.zeros((n, len(_CHANNELS)))
        values[:, _DECISIONS] = 1.0
        values[:, _EXPLORED] = np.fromiter((d.explored for d in decisions), np.float64, n)
        values[:, _FALLBACK] = np.fromiter((d.fallback for d in decided), np.float64, n)
        if served_probs is not None and baseline_probs is not None:
            kl = kl_rows(served_probs, baseline_probs, eps=self.config.kl_eps)
            if kl.shape != (n,):
                raise ValidationError(
                    f"served_probs has {kl.shape[0]} rows for {n} decisions", field="served_probs"
                )
            values[:, _KL_ROWS] = 1.0
            values[:, _KL] = kl
            values[:, _KL_SQ] = kl * kl
        windows = self._reference
        binned = windows.bins(rows) if windows is not None else None
        with self._lock:
            self._sums.add(keys, values, when)
            if windows is not None and binned is not None and windows is self._reference:
                windows.bin_counts.add(binned[0], when)
                windows.cell_counts.add(binned[1], when)

    def snapshot(self, now: float | None = None) -> MonitorSnapshot:
        when = self.clock.now() if now is None else now
        with self._lock:
            totals = self._sums.totals(when)
            windows = self._reference
            features = windows.bin_counts.totals(when) if windows is not None else None
            cells = windows.cell_counts.totals(when) if windows is not None else None
        counts = {key: round(float(sums[_DECISIONS])) for key, sums in totals.sums.items()}
        arms: dict[str, F64] = {}
        for (arm, _, _), sums in totals.sums.items():
            arms[arm] = arms[arm] + sums if arm in arms else sums.copy()
        summaries: dict[str, ArmSummary] = {}
        for arm, sums in sorted(arms.items()):
            n = sums[_DECISIONS]
            if n <= 0:
                continue
            kl = Moments.of(sums[_KL_ROWS], sums[_KL], sums[_KL_SQ]) if sums[_KL_ROWS] > 0 else None
            summaries[arm] = ArmSummary(
                round(n), float(sums[_EXPLORED] / n), float(sums[_FALLBACK] / n), kl
            )
        psi: dict[str, float] = {}
        coverage = None
        if windows is not None and features is not None and cells is not None:
            ref = windows.reference
            psi = feature_drift(
                ref.counts,
                ref.bins.split(features),
                eps=self.config.psi_eps,
                min_count=self.config.psi_min_count,
            )
            if cells.sum() > 0:
                ids = np.append(ref.cells, -1)
                coverage = state_coverage(ref.cells, ids, cells)
        return MonitorSnapshot(
            at=when,
            window_seconds=self.config.window.seconds,
            decisions=sum(counts.values()) + round(float(totals.other[_DECISIONS])),
            action_counts=dict(sorted(counts.items())),
            top_shares=action_shares(counts),
            arms=summaries,
            psi=psi,
            coverage=coverage,
            other_decisions=round(float(totals.other[_DECISIONS])),
            reference=None if windows is None else windows.reference.source,
        )
