"""Segments: the bounded label a decision is grouped under for per-segment action shares.

A collapse hides inside a segment: a policy that gives every premium visitor the same
price may look diverse over all traffic. The segment is one feature of the schema:

- a ``category`` or ``bool`` feature's value (pricing: ``segment``, bargain / regular /
  premium);
- a numeric feature cut at ``edges`` into bands (the advisor has no category feature;
  its natural segment is ``risk_tolerance`` in thirds, the strategies it should and
  should not get differ most across it).

Labels come from the schema, never from requests: a value the schema does not allow
reads as ``other``, so the set of labels is fixed when the monitor is built.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlops.core.errors import ValidationError
from rlops.core.features import FeatureSchema

ALL = "all"
OTHER = "other"


@dataclass(frozen=True, slots=True)
class SegmentConfig:
    """Group by ``feature`` (``None``: one segment, ``all``); ``edges`` band a number."""

    feature: str | None = None
    edges: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        edges = tuple(float(e) for e in self.edges)
        if any(not np.isfinite(e) for e in edges) or any(
            b <= a for a, b in itertools.pairwise(edges)
        ):
            raise ValidationError(
                "segment edges must be finite and strictly increasing", field="segment.edges"
            )
        if edges and self.feature is None:
            raise ValidationError("segment edges need a feature", field="segment.edges")
        object.__setattr__(self, "edges", edges)

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.feature, "edges": list(self.edges)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SegmentConfig:
        return cls(feature=data.get("feature"), edges=tuple(data.get("edges", ())))


def default_segment(app: str) -> SegmentConfig:
    """The reference applications' natural segments (others: one segment)."""
    if app == "pricing":
        return SegmentConfig("segment")
    if app == "advisor":
        return SegmentConfig("risk_tolerance", edges=(1.0 / 3.0, 2.0 / 3.0))
    return SegmentConfig()


class Segmenter:
    """Labels rows by a :class:`SegmentConfig` checked against a schema."""

    def __init__(self, config: SegmentConfig, schema: FeatureSchema) -> None:
        self.config = config
        self.feature = None if config.feature is None else schema[config.feature]
        self._map: dict[object, str] = {}
        labels: list[str] = [ALL]
        if self.feature is not None:
            f = self.feature
            if f.kind in ("float", "int"):
                if not config.edges:
                    raise ValidationError(
                        f"numeric segment feature {f.name!r} needs edges", field="segment.edges"
                    )
                e = config.edges
                labels = [
                    f"<{e[0]:g}",
                    *(f"[{a:g},{b:g})" for a, b in itertools.pairwise(e)),
                    f">={e[-1]:g}",
                ]
            elif config.edges:
                raise ValidationError(
                    f"segment feature {f.name!r} is a {f.kind}; only a number takes edges",
                    field="segment.edges",
                )
            elif f.kind == "bool":
                self._map = {False: "false", True: "true"}
                labels = ["false", "true"]
            else:
                self._map = {c: c for c in f.categories}
                labels = list(f.categories)
            labels.append(OTHER)
        self.labels: tuple[str, ...] = tuple(labels)
        self._edges = np.asarray(config.edges)

    def label(self, rows: Sequence[Mapping[str, object]]) -> list[str]:
        """One label per row, from the fixed set :attr:`labels`."""
        f = self.feature
        if f is None:
            return [ALL] * len(rows)
        name = f.name
        if f.kind in ("float", "int"):
            raw = [row.get(name) for row in rows]
            x = np.array(
                [
                    v if isinstance(v, int | float) and not isinstance(v, bool) else np.nan
                    for v in raw
                ],
                dtype=np.float64,
            )
            band = np.searchsorted(self._edges, x, side="right")
            band[~np.isfinite(x)] = len(self.labels) - 1
            labels = self.labels
            return [labels[i] for i in band.tolist()]
        mapping = self._map
        if f.kind == "category":
            return [
                mapping.get(v, OTHER) if isinstance(v, str) else OTHER
                for v in (row.get(name) for row in rows)
            ]
        return [mapping.get(row.get(name), OTHER) for row in rows]
