"""The coarse joint grid that coverage counts cells of.

Drift looks at one feature at a time; a policy acts on combinations. The grid crosses
the segment-like features (bools, categories) with a few numeric ones in a few
quantile bins each, and a :class:`~rlops.monitoring.reference.Reference` records which
cells its training sample occupied. A live row in a cell the sample never reached is a
state the policy was not trained on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rlops.core.errors import ValidationError
from rlops.core.features import FeatureSchema
from rlops.monitoring.bins import (
    NUMERIC,
    Binner,
    Codes,
    FeatureBinning,
    FeatureBins,
    Prepared,
    check_bins,
)

#: The most cells a grid may have: a server maps cell ids to slots in a dense array.
MAX_CELLS = 1 << 24


def _entropy(codes: Codes, size: int) -> float:
    """Entropy in nats of the codes' distribution over ``size`` bins."""
    counts = np.bincount(codes, minlength=size)
    p = counts[counts > 0] / max(len(codes), 1)
    return float(-(p * np.log(p)).sum())


def _information(codes: Codes, size: int, actions: Codes) -> float:
    """Mutual information in nats between the codes and the logged actions."""
    if len(codes) == 0:
        return 0.0
    k = int(actions.max()) + 1
    joint = np.bincount(codes * k + actions, minlength=size * k).reshape(size, k) / len(codes)
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    held = joint > 0
    return float((joint[held] * np.log(joint[held] / outer[held])).sum())


@dataclass(frozen=True)
class JointGrid:
    """A coarse grid over a few features; a row's cell is its bins in mixed radix.

    Only a few numeric features are crossed, each in a few quantile bins (quintiles by
    default: their edges are among the drift bins' deciles, so a row's cell is a table
    lookup from its drift bins), so the number of cells stays small enough for a
    training snapshot to fill the cells real traffic visits.
    """

    features: tuple[FeatureBinning, ...]
    _binner: Binner = field(init=False, repr=False, compare=False)
    _radix: npt.NDArray[np.int64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        features = tuple(self.features)
        names = [b.name for b in features]
        if len(set(names)) != len(names):
            raise ValidationError("grid features must be unique", field="grid")
        sizes = [b.size for b in features]
        if math.prod(sizes) > MAX_CELLS:
            raise ValidationError(f"the grid has more than {MAX_CELLS} cells", field="grid")
        place = [math.prod(sizes[i + 1 :]) for i in range(len(sizes))]
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "_binner", Binner(features))
        object.__setattr__(self, "_radix", np.asarray(place, dtype=np.int64))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.features)

    @property
    def n_cells(self) -> int:
        return math.prod(b.size for b in self.features)

    @property
    def radix(self) -> npt.NDArray[np.int64]:
        """Each feature's place value in a cell id."""
        return self._radix

    def cells(self, prepared: Prepared) -> npt.NDArray[np.int64]:
        """``(n,)`` cell id of each row (0 for every row of an empty grid)."""
        out: npt.NDArray[np.int64] = self._binner.codes(prepared) @ self._radix
        return out

    @classmethod
    def fit(
        cls,
        schema: FeatureSchema,
        prepared: Prepared,
        *,
        bins: int = 5,
        max_numeric: int = 4,
        names: Sequence[str] | None = None,
        max_cells: int = 65_536,
        max_filled: int | None = None,
        actions: Codes | None = None,
    ) -> JointGrid:
        """The grid over ``names``, or over every bool and category feature and the
        ``max_numeric`` most relevant numeric features.

        The monitor cannot see inside the policy, so relevance is read from the data: with
        the logged ``actions`` (``(n,)`` integer codes), the mutual information between a
        feature's bins and the action, i.e. how much the logging policy's choices depend
        on it; without them, the entropy of its bins, which only tells a varying feature
        from a constant or tied one. Numeric features are then dropped, least relevant
        first (then, if need be, the others), until there are at most ``max_cells`` cells
        and at most ``max_filled`` that reference values can fill: segments and flags are
        kept longest, as traffic shifts between them first. Callers that know the
        important features pass ``names``.
        """
        check_bins(bins, "grid_bins")
        if isinstance(max_numeric, bool) or not isinstance(max_numeric, int) or max_numeric < 0:
            raise ValidationError("max_numeric must be an integer >= 0", field="grid_features")
        if names is not None:
            if len(set(names)) != len(names):
                raise ValidationError("grid feature names must be unique", field="grid_features")
            chosen = [schema[name] for name in names]
        else:
            chosen = list(schema.features)
        fitted = [FeatureBinning.fit(f, prepared.number(f.name), bins) for f in chosen]
        codes = Binner(tuple(fitted)).codes(prepared)
        if actions is not None:
            labels = np.asarray(actions)
            if labels.shape != (prepared.n,) or not np.issubdtype(labels.dtype, np.integer):
                raise ValidationError("actions must be one integer code per row", field="actions")
            if labels.size and labels.min() < 0:
                raise ValidationError("action codes must be >= 0", field="actions")
        spread = {
            b.name: _entropy(codes[:, j], b.size)
            if actions is None
            else _information(codes[:, j], b.size, labels)
            for j, b in enumerate(fitted)
        }
        numeric = [b for b in fitted if b.kind in NUMERIC]
        if names is None and len(numeric) > max_numeric:
            keep = sorted(numeric, key=lambda b: -spread[b.name])[:max_numeric]
            fitted = [b for b in fitted if b.kind not in NUMERIC or b in keep]
        filled = max_cells if max_filled is None else max_filled
        while fitted and (
            math.prod(b.size for b in fitted) > min(max_cells, MAX_CELLS)
            or math.prod(b.fillable for b in fitted) > filled
        ):
            numeric = [b for b in fitted if b.kind in NUMERIC]
            fitted.remove(min(numeric or fitted, key=lambda b: spread[b.name]))
        return cls(tuple(fitted))

    def to_json(self) -> list[dict[str, Any]]:
        return [b.to_json() for b in self.features]

    @classmethod
    def from_json(cls, data: Sequence[Mapping[str, Any]]) -> JointGrid:
        return cls(tuple(FeatureBinning.from_json(b) for b in data))


def _coarsen(fine: FeatureBinning, coarse: FeatureBinning) -> Codes | None:
    """``table[fine_code] = coarse_code``, or None if a fine bin straddles a coarse edge.

    Quantile edges at ``k / 5`` are among those at ``k / 10`` (computed from the same
    values, they are the same floats), so a decile code maps to its quintile code.
    """
    if (fine.kind, fine.categories) != (coarse.kind, coarse.categories):
        return None
    if fine.kind not in NUMERIC:
        return np.arange(fine.size, dtype=np.intp)
    if not set(coarse.edges) <= set(fine.edges):
        return None
    lower = np.array([-np.inf, *fine.edges])  # fine bin 1 + i starts at lower[i]
    table = np.zeros(fine.size, dtype=np.intp)
    table[1:] = 1 + np.searchsorted(np.asarray(coarse.edges), lower, side="right")
    return table


@dataclass(frozen=True, eq=False)
class GridFromBins:
    """Grid cells from fine bin codes by table lookup, skipping a second binning pass.

    Built by :meth:`of` when every grid feature's bins merge whole fine bins.
    """

    positions: tuple[int, ...]
    tables: tuple[Codes, ...]
    radix: npt.NDArray[np.int64]

    @classmethod
    def of(cls, grid: JointGrid, bins: FeatureBins) -> GridFromBins | None:
        where = {b.name: j for j, b in enumerate(bins.features)}
        positions, tables = [], []
        for g in grid.features:
            j = where.get(g.name)
            table = None if j is None else _coarsen(bins.features[j], g)
            if j is None or table is None:
                return None
            positions.append(j)
            tables.append(table)
        return cls(tuple(positions), tuple(tables), grid.radix)

    def cells(self, codes: Codes) -> npt.NDArray[np.int64]:
        """``(n,)`` cell ids from ``(n, features)`` fine codes of :class:`FeatureBins`."""
        out = np.zeros(len(codes), dtype=np.int64)
        for j, table, place in zip(self.positions, self.tables, self.radix.tolist(), strict=True):
            out += table[codes[:, j]] * place
        return out
