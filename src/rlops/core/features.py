"""Feature schemas: ordered, typed, named features with defaults and bounds.

A schema is saved in every policy artifact and serving builds vectors from it by name,
never by position, so training and serving cannot disagree on order. Categorical
features expand to one-hot columns named ``name=category``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rlops.core.actions import check_id
from rlops.core.canonical import content_hash
from rlops.core.errors import ValidationError

FeatureKind = Literal["float", "int", "bool", "category"]
FeatureValue = float | int | bool | str
_KINDS: tuple[str, ...] = ("float", "int", "bool", "category")


@dataclass(frozen=True, slots=True)
class Feature:
    """One named feature.

    ``default=None`` makes the feature required. ``low``/``high`` are inclusive bounds
    for numeric kinds; ``categories`` lists the allowed values of a ``category``.
    """

    name: str
    kind: FeatureKind = "float"
    default: FeatureValue | None = None
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        check_id(self.name, "feature.name")
        if self.kind not in _KINDS:
            raise ValidationError(
                f"feature {self.name!r}: kind must be one of {_KINDS}, got {self.kind!r}",
                field=f"features.{self.name}.kind",
            )
        object.__setattr__(self, "categories", tuple(self.categories))
        if self.kind == "category":
            if not self.categories or len(set(self.categories)) != len(self.categories):
                raise ValidationError(
                    f"feature {self.name!r}: a category needs unique, non-empty categories",
                    field=f"features.{self.name}.categories",
                )
        elif self.categories:
            raise ValidationError(
                f"feature {self.name!r}: only a category feature has categories",
                field=f"features.{self.name}.categories",
            )
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValidationError(
                f"feature {self.name!r}: low {self.low} is above high {self.high}",
                field=f"features.{self.name}.low",
            )
        if self.default is not None:
            object.__setattr__(self, "default", self.check(self.default))

    @property
    def width(self) -> int:
        return len(self.categories) if self.kind == "category" else 1

    @property
    def columns(self) -> tuple[str, ...]:
        if self.kind == "category":
            return tuple(f"{self.name}={c}" for c in self.categories)
        return (self.name,)

    def check(self, value: object) -> FeatureValue:
        """Return ``value`` as this feature's type or raise an error naming the field."""
        where = f"features.{self.name}"
        if self.kind == "category":
            if not isinstance(value, str) or value not in self.categories:
                raise ValidationError(
                    f"feature {self.name!r} must be one of {list(self.categories)}, got {value!r}",
                    field=where,
                )
            return value
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValidationError(
                f"feature {self.name!r} must be a boolean, got {value!r}", field=where
            )
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ValidationError(
                f"feature {self.name!r} must be a number, got {type(value).__name__} {value!r}",
                field=where,
            )
        number = float(value)
        if not math.isfinite(number):
            raise ValidationError(f"feature {self.name!r} is not finite: {value!r}", field=where)
        if self.kind == "int":
            if number != int(number):
                raise ValidationError(
                    f"feature {self.name!r} must be an integer, got {value!r}", field=where
                )
            checked: FeatureValue = int(number)
        else:
            checked = number
        if (self.low is not None and number < self.low) or (
            self.high is not None and number > self.high
        ):
            raise ValidationError(
                f"feature {self.name!r} = {value!r} is outside [{self.low}, {self.high}]",
                field=where,
            )
        return checked

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "default": self.default,
            "low": self.low,
            "high": self.high,
            "categories": list(self.categories),
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Feature:
        return cls(
            name=data["name"],
            kind=data.get("kind", "float"),
            default=data.get("default"),
            low=data.get("low"),
            high=data.get("high"),
            categories=tuple(data.get("categories", ())),
            description=data.get("description", ""),
        )


@dataclass(frozen=True, slots=True)
class ResolvedFeatures:
    """Checked values for every schema feature, and the names that fell back to defaults."""

    values: dict[str, FeatureValue]
    defaulted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FeatureSchema:
    """An ordered list of features; vectors are built by name from mappings."""

    features: tuple[Feature, ...]
    version: str = field(default="", compare=False)
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    _offsets: tuple[int, ...] = field(default=(), compare=False, repr=False)
    # Built once: the serving path and the rule engines ask for columns on every batch.
    _columns: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        features = tuple(self.features)
        names = [f.name for f in features]
        if not features:
            raise ValidationError("a feature schema needs at least one feature", field="features")
        if len(set(names)) != len(names):
            raise ValidationError("feature names must be unique", field="features")
        offsets, offset = [], 0
        for f in features:
            offsets.append(offset)
            offset += f.width
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(names)})
        object.__setattr__(self, "_offsets", tuple(offsets))
        object.__setattr__(self, "_columns", tuple(c for f in features for c in f.columns))
        object.__setattr__(self, "version", content_hash([f.to_json() for f in features]))

    @classmethod
    def of(cls, features: Iterable[Feature]) -> FeatureSchema:
        return cls(features=tuple(features))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def columns(self) -> tuple[str, ...]:
        """Names of the vector's columns (categories expanded)."""
        return self._columns

    @property
    def dim(self) -> int:
        return sum(f.width for f in self.features)

    def __getitem__(self, name: str) -> Feature:
        try:
            return self.features[self._index[name]]
        except KeyError:
            raise ValidationError(f"unknown feature {name!r}", field=f"features.{name}") from None

    def resolve(self, values: Mapping[str, object]) -> ResolvedFeatures:
        """Check every value and fill defaults; unknown names and missing required fail."""
        if not isinstance(values, Mapping):
            raise ValidationError("features must be a mapping of name to value", field="features")
        for name in values:
            if name not in self._index:
                raise ValidationError(f"unknown feature {name!r}", field=f"features.{name}")
        resolved: dict[str, FeatureValue] = {}
        defaulted: list[str] = []
        for f in self.features:
            if f.name in values and values[f.name] is not None:
                resolved[f.name] = f.check(values[f.name])
            elif f.default is not None:
                resolved[f.name] = f.default
                defaulted.append(f.name)
            else:
                raise ValidationError(
                    f"required feature {f.name!r} is missing", field=f"features.{f.name}"
                )
        return ResolvedFeatures(values=resolved, defaulted=tuple(defaulted))

    def vector(self, values: Mapping[str, object]) -> npt.NDArray[np.float32]:
        """A ``(dim,)`` float32 vector built by name from ``values``."""
        out = np.zeros(self.dim, dtype=np.float32)
        self._fill(out, self.resolve(values).values)
        return out

    def matrix(self, rows: Sequence[Mapping[str, object]]) -> npt.NDArray[np.float32]:
        """A ``(n, dim)`` float32 matrix, one row per mapping."""
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        for i, row in enumerate(rows):
            self._fill(out[i], self.resolve(row).values)
        return out

    def matrix_checked(self, rows: Sequence[Mapping[str, FeatureValue]]) -> npt.NDArray[np.float32]:
        """``matrix`` for rows already checked against a schema (the server's hot path).

        Built a column at a time (one comprehension per feature, not a Python loop per
        cell). A name the rows lack takes its default, so a policy trained on a newer
        schema still gets a full row; values are trusted, not checked again.
        """
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        for f, offset in zip(self.features, self._offsets, strict=True):
            name, default = f.name, f.default
            if f.kind == "category":
                for i, row in enumerate(rows):
                    value = row.get(name, default)
                    if value in f.categories:
                        out[i, offset + f.categories.index(str(value))] = 1.0
            else:
                fill = 0.0 if default is None else float(default)
                out[:, offset] = [
                    fill if (v := row.get(name)) is None else float(v) for row in rows
                ]
        return out

    def _fill(self, out: npt.NDArray[np.float32], values: Mapping[str, FeatureValue]) -> None:
        for f, offset in zip(self.features, self._offsets, strict=True):
            value = values[f.name]
            if f.kind == "category":
                out[offset + f.categories.index(str(value))] = 1.0
            else:
                out[offset] = float(value)

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "features": [f.to_json() for f in self.features]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureSchema:
        schema = cls(features=tuple(Feature.from_json(f) for f in data["features"]))
        stated = data.get("version")
        if stated is not None and stated != schema.version:
            raise ValidationError(
                f"schema version {stated!r} does not match its content ({schema.version})",
                field="version",
            )
        return schema
