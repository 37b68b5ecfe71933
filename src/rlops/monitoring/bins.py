"""Feature bins fitted on a reference sample, and the coarse joint grid for coverage.

Drift and coverage compare where live rows fall with where training rows fell, so both
sides must be binned by the same rules:

- a numeric feature (``float``, ``int``) gets quantile bins of the reference sample,
  merged where values tie (a feature that is 0 for 60% of rows gets one edge at 0, not
  six), plus a bin below the reference's minimum and one above its maximum. Those two
  are empty in the reference, so values it never saw count as drift and as unseen
  states rather than joining the outermost quantile. With no reference values, edges
  split the schema's ``[low, high]`` evenly.
  Values are rounded to float32 before binning, on both sides: training matrices are
  float32, and a value exactly on a tied edge must land in the same bin either way;
- a ``bool`` gets one bin per value; a ``category`` one bin per category;
- bin 0 is *missing*: a value absent from the row, ``None``, not finite, or not of the
  feature's kind (a category the schema does not list).

Values are binned as the policy saw them, after the feature store and schema defaults:
the share of defaults is already the server's ``rlops_feature_defaults_total``, and a
surge of defaults shows here as a surge in the default value's bin.

Rows are first *prepared* (:class:`Prepared`): numbers into one float block, bools and
categories into codes. Binning a prepared batch is a few numpy operations for all
numeric features together, which keeps the server's per-decision cost low.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from rlops.core.errors import ValidationError
from rlops.core.features import Feature, FeatureKind, FeatureSchema

Codes = npt.NDArray[np.intp]
F64 = npt.NDArray[np.float64]
Column = Sequence[object] | npt.NDArray[Any]
Columns = Mapping[str, Column]
MISSING = 0
NUMERIC: tuple[str, ...] = ("float", "int")

_BOOL_CODES: dict[object, int] = {False: 1, True: 2}


class Kinded(Protocol):
    """A feature or a binning: what preparing values needs to know of it."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> FeatureKind: ...

    @property
    def categories(self) -> tuple[str, ...]: ...


def _rounded(array: F64) -> F64:
    with np.errstate(over="ignore", invalid="ignore"):
        out = array.astype(np.float32).astype(np.float64)
    out[~np.isfinite(out)] = np.nan
    return out


def _numbers(values: Column) -> F64:
    """Values as float64 rounded through float32; NaN where a value is not a number."""
    if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.number):
        return _rounded(values.astype(np.float64))
    try:
        array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError):  # a stray string: bin it as missing, not fail
        array = np.array(
            [float(v) if isinstance(v, int | float) else np.nan for v in values], dtype=np.float64
        )
    if array.ndim != 1:
        raise ValidationError("a feature column must be one value per row", field="features")
    return _rounded(array)


def _codes(feature: Kinded, values: Iterable[object], n: int) -> Codes:
    """Bin codes of a bool or category feature's values (0 for anything else)."""
    if feature.kind == "bool":
        return np.fromiter((_BOOL_CODES.get(v, MISSING) for v in values), dtype=np.intp, count=n)
    mapping = {c: i + 1 for i, c in enumerate(feature.categories)}
    return np.fromiter(
        (mapping.get(v, MISSING) if isinstance(v, str) else MISSING for v in values),
        dtype=np.intp,
        count=n,
    )


@dataclass(frozen=True, eq=False)
class Prepared:
    """``n`` rows ready to bin: ``numbers (n, m)`` for the numeric features named in
    ``columns`` (NaN missing, float32-rounded), ``codes[name] (n,)`` for bools and
    categories. A feature in neither is missing in every row."""

    n: int
    numbers: F64
    columns: Mapping[str, int]
    codes: Mapping[str, Codes]

    def number(self, name: str) -> F64 | None:
        j = self.columns.get(name)
        return None if j is None else self.numbers[:, j]


def prepare_columns(features: Sequence[Kinded], columns: Columns, n: int) -> Prepared:
    """``features``' values from per-feature columns (Python values or numeric arrays)."""
    numeric = [f for f in features if f.kind in NUMERIC and f.name in columns]
    numbers = np.full((n, len(numeric)), np.nan)
    codes: dict[str, Codes] = {}
    for f in features:
        values = columns.get(f.name)
        if values is not None and len(values) != n:
            raise ValidationError(
                f"column {f.name!r} has {len(values)} values, expected {n}",
                field=f"features.{f.name}",
            )
    for j, f in enumerate(numeric):
        numbers[:, j] = _numbers(columns[f.name])
    for f in features:
        values = columns.get(f.name)
        if values is None or f.kind in NUMERIC:
            continue
        if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.number):
            if f.kind != "bool":
                raise ValidationError(
                    f"category {f.name!r} needs its values, not numbers", field=f"features.{f.name}"
                )
            codes[f.name] = np.where(np.isin(values, (0, 1)), values.astype(np.intp) + 1, MISSING)
        else:
            codes[f.name] = _codes(f, values, n)
    return Prepared(n, numbers, {f.name: j for j, f in enumerate(numeric)}, codes)


def prepare_rows(features: Sequence[Kinded], rows: Sequence[Mapping[str, object]]) -> Prepared:
    """``features``' values across ``rows`` (feature mappings, as decisions hold them).

    The server's path: each row is read once for all numeric features (an
    ``itemgetter`` call, in C) straight into one float array. A row that lacks a
    feature or holds a non-number (not the server's, whose rows are checked and
    complete) sends the batch down the careful path, which bins such values as missing.
    """
    n = len(rows)
    numeric = [f.name for f in features if f.kind in NUMERIC]
    others = [f for f in features if f.kind not in NUMERIC]
    numbers: F64 | None = None
    if numeric and n:
        getter = operator.itemgetter(*numeric)
        try:
            if len(numeric) == 1:
                flat = np.fromiter(map(getter, rows), dtype=np.float64, count=n)
            else:
                chained = itertools.chain.from_iterable(map(getter, rows))
                flat = np.fromiter(chained, dtype=np.float64, count=n * len(numeric))
            numbers = _rounded(flat.reshape(n, len(numeric)))
        except (KeyError, TypeError, ValueError):
            numbers = None
    if numbers is None:
        numbers = np.full((n, len(numeric)), np.nan)
        for j, name in enumerate(numeric):
            numbers[:, j] = _numbers([row.get(name) for row in rows])
    codes = {f.name: _codes(f, (row.get(f.name) for row in rows), n) for f in others}
    return Prepared(n, numbers, {name: j for j, name in enumerate(numeric)}, codes)


def matrix_columns(x: npt.NDArray[Any], schema: FeatureSchema) -> dict[str, Column]:
    """Per-feature values from a ``(n, schema.dim)`` schema matrix (one-hot categories)."""
    matrix = np.asarray(x)
    if matrix.ndim != 2 or matrix.shape[1] != schema.dim:
        raise ValidationError(
            f"features must have shape (n, {schema.dim}), got {matrix.shape}", field="features"
        )
    out: dict[str, Column] = {}
    offset = 0
    for f in schema.features:
        block = matrix[:, offset : offset + f.width]
        offset += f.width
        if f.kind == "category":
            hot = block.argmax(axis=1)
            out[f.name] = [
                f.categories[int(i)] if has else None
                for i, has in zip(hot, block.max(axis=1) > 0, strict=True)
            ]
        else:
            out[f.name] = block[:, 0]
    return out


@dataclass(frozen=True, slots=True)
class FeatureBinning:
    """How one feature's values map to bins; bin 0 is missing.

    ``edges`` (numeric kinds) are strictly increasing interior edges: bin ``1 + i`` holds
    values in ``[edges[i-1], edges[i])``. ``categories`` (category kind) in schema order.
    """

    name: str
    kind: FeatureKind
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"bins.{self.name}"
        if self.kind not in ("float", "int", "bool", "category"):
            raise ValidationError(f"unknown feature kind {self.kind!r}", field=f"{where}.kind")
        edges = tuple(float(e) for e in self.edges)
        if any(not math.isfinite(e) for e in edges) or any(
            b <= a for a, b in itertools.pairwise(edges)
        ):
            raise ValidationError(
                "edges must be finite and strictly increasing", field=f"{where}.edges"
            )
        if edges and self.kind not in NUMERIC:
            raise ValidationError("only a numeric feature has edges", field=f"{where}.edges")
        if (self.kind == "category") != bool(self.categories):
            raise ValidationError(
                "a category feature, and only one, lists its categories",
                field=f"{where}.categories",
            )
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "categories", tuple(self.categories))

    @property
    def size(self) -> int:
        """Number of bins, the missing bin included."""
        if self.kind == "category":
            return 1 + len(self.categories)
        if self.kind == "bool":
            return 3
        return 2 + len(self.edges)

    @property
    def fillable(self) -> int:
        """Bins a reference sample can fill: not missing, below its minimum or above its
        maximum."""
        if self.kind == "category":
            return len(self.categories)
        if self.kind == "bool":
            return 2
        return max(len(self.edges) - 1, 1)

    @property
    def labels(self) -> tuple[str, ...]:
        """A readable name per bin, for dashboards."""
        if self.kind == "category":
            return ("missing", *self.categories)
        if self.kind == "bool":
            return ("missing", "false", "true")
        e = self.edges
        if not e:
            return ("missing", "all")
        inner = [f"[{a:g},{b:g})" for a, b in itertools.pairwise(e)]
        return ("missing", f"<{e[0]:g}", *inner, f">={e[-1]:g}")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "edges": list(self.edges),
            "categories": list(self.categories),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureBinning:
        return cls(
            name=data["name"],
            kind=data["kind"],
            edges=tuple(data.get("edges", ())),
            categories=tuple(data.get("categories", ())),
        )

    @classmethod
    def fit(cls, feature: Feature, numbers: F64 | None, bins: int) -> FeatureBinning:
        """Bins for ``feature``; numeric ones from prepared reference ``numbers`` (``None``:
        no values) in ``bins`` quantile bins."""
        if feature.kind == "category":
            return cls(feature.name, "category", categories=feature.categories)
        if feature.kind == "bool":
            return cls(feature.name, "bool")
        x = np.empty(0) if numbers is None else numbers[~np.isnan(numbers)]
        if x.size:
            cuts = np.quantile(x, np.linspace(0.0, 1.0, bins + 1))
            cuts[-1] = np.nextafter(cuts[-1], np.inf)  # the maximum itself is inside
        elif feature.low is not None and feature.high is not None and feature.high > feature.low:
            cuts = np.linspace(feature.low, feature.high, bins + 1)[1:-1]
        else:
            cuts = np.empty(0)
        return cls(feature.name, feature.kind, edges=tuple(np.unique(cuts).tolist()))


def check_bins(bins: int, name: str) -> None:
    if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 1000:
        raise ValidationError(f"{name} must be an integer in [1, 1000], got {bins!r}", field=name)


@dataclass(frozen=True, eq=False)
class Binner:
    """Bins prepared rows for a tuple of binnings (``searchsorted`` per numeric column)."""

    binnings: tuple[FeatureBinning, ...]
    numeric: tuple[int, ...] = field(init=False)
    names: tuple[str, ...] = field(init=False)
    edges: tuple[F64, ...] = field(init=False)
    others: tuple[tuple[int, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        numeric = tuple(j for j, b in enumerate(self.binnings) if b.kind in NUMERIC)
        set_ = functools.partial(object.__setattr__, self)
        set_("numeric", numeric)
        set_("names", tuple(self.binnings[j].name for j in numeric))
        set_("edges", tuple(np.asarray(self.binnings[j].edges, dtype=np.float64) for j in numeric))
        set_(
            "others",
            tuple((j, b.name) for j, b in enumerate(self.binnings) if b.kind not in NUMERIC),
        )

    def codes(self, prepared: Prepared) -> Codes:
        """``(n, len(binnings))`` bin index per row and binning."""
        n = prepared.n
        out = np.zeros((n, len(self.binnings)), dtype=np.intp)
        if self.numeric:
            index = [prepared.columns.get(name, -1) for name in self.names]
            if -1 in index:  # a feature the rows lack is missing in every row
                x = np.full((n, len(index)), np.nan)
                for k, i in enumerate(index):
                    if i >= 0:
                        x[:, k] = prepared.numbers[:, i]
            else:
                x = prepared.numbers[:, index]
            codes = np.empty(x.shape, dtype=np.intp)
            for i, edges in enumerate(self.edges):
                codes[:, i] = np.searchsorted(edges, x[:, i], side="right")
            codes += 1
            codes[np.isnan(x)] = MISSING
            out[:, self.numeric] = codes
        for j, name in self.others:
            found = prepared.codes.get(name)
            if found is not None:
                out[:, j] = found
        return out


@dataclass(frozen=True)
class FeatureBins:
    """The binning of every monitored feature, in schema order."""

    features: tuple[FeatureBinning, ...]
    #: Where each feature's bins start in the flat vector of all bins.
    offsets: npt.NDArray[np.intp] = field(init=False, repr=False, compare=False)
    #: The number of bins of all features together.
    width: int = field(init=False, repr=False, compare=False)
    _binner: Binner = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        features = tuple(self.features)
        names = [b.name for b in features]
        if not names or len(set(names)) != len(names):
            raise ValidationError("feature bins need unique feature names", field="bins")
        sizes = [b.size for b in features]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "width", sum(sizes))
        object.__setattr__(self, "_binner", Binner(features))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.features)

    @classmethod
    def fit(cls, schema: FeatureSchema, prepared: Prepared, *, bins: int = 10) -> FeatureBins:
        """Bins for every schema feature from a prepared reference sample."""
        check_bins(bins, "bins")
        return cls(
            tuple(FeatureBinning.fit(f, prepared.number(f.name), bins) for f in schema.features)
        )

    def codes(self, prepared: Prepared) -> Codes:
        """``(n, features)`` bin index per row and feature; absent features are missing."""
        return self._binner.codes(prepared)

    def flat(self, codes: Codes) -> Codes:
        """Bin indices into the flat vector of all features' bins, ``(n * features,)``."""
        out: Codes = (codes + self.offsets[None, :]).ravel()
        return out

    def split(self, flat_counts: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[np.int64]]:
        """A flat ``(width,)`` count vector as per-feature bin counts."""
        return {
            b.name: flat_counts[o : o + b.size]
            for b, o in zip(self.features, self.offsets.tolist(), strict=True)
        }

    def counts(self, prepared: Prepared) -> dict[str, npt.NDArray[np.int64]]:
        """Per-feature bin counts of prepared rows."""
        flat = self.flat(self.codes(prepared))
        return self.split(np.bincount(flat, minlength=self.width).astype(np.int64))

    def bin_rows(self, rows: Sequence[Mapping[str, object]]) -> dict[str, npt.NDArray[np.int64]]:
        """Per-feature bin counts of ``rows`` (feature mappings, as decisions hold them)."""
        return self.counts(prepare_rows(self.features, rows))

    def bin_matrix(
        self, x: npt.NDArray[Any], schema: FeatureSchema
    ) -> dict[str, npt.NDArray[np.int64]]:
        """Per-feature bin counts of a ``(n, schema.dim)`` schema matrix."""
        return self.counts(prepare_columns(self.features, matrix_columns(x, schema), len(x)))

    def to_json(self) -> list[dict[str, Any]]:
        return [b.to_json() for b in self.features]

    @classmethod
    def from_json(cls, data: Sequence[Mapping[str, Any]]) -> FeatureBins:
        return cls(tuple(FeatureBinning.from_json(b) for b in data))
