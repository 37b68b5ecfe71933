"""A search space of learner settings, and the candidate configs drawn from it.

Written as JSON, one entry per setting of the learner's config::

    {"rule": ["linucb", "epsilon"],                  # a choice
     "alpha": {"low": 0.1, "high": 10, "log": true}, # a range (log-uniform)
     "ridge_lambda": {"low": 1, "high": 8, "integer": true}}

Without ``num_samples`` the candidates are the grid of every choice (ranges then need a
sample count); with it, ``num_samples`` draws from a generator seeded by ``seed``. The
candidates are drawn once, by the caller, before any trial runs, so every engine trains
exactly the same configs in the same order and picks the same best.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlops.core.errors import ValidationError

Candidate = dict[str, Any]
_RANGE_KEYS = frozenset({"low", "high", "log", "integer"})


@dataclass(frozen=True, slots=True)
class Choice:
    """One of ``values`` (JSON values: numbers, strings, booleans, lists)."""

    name: str
    values: tuple[Any, ...]

    def draw(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]


@dataclass(frozen=True, slots=True)
class Range:
    """A number in ``[low, high]``: uniform, or log-uniform with ``log``; ``integer`` rounds."""

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValidationError(
                f"range {self.name!r} needs finite low < high, got [{self.low}, {self.high}]",
                field=f"space.{self.name}",
            )
        if self.log and self.low <= 0.0:
            raise ValidationError(
                f"log range {self.name!r} needs low > 0", field=f"space.{self.name}"
            )

    def draw(self, rng: np.random.Generator) -> float | int:
        u = float(rng.random())
        if self.log:
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + u * (self.high - self.low)
        return round(value) if self.integer else value


Param = Choice | Range


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Settings to vary, in the order written; the rest keep the learner's defaults."""

    params: tuple[Param, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SearchSpace:
        if not isinstance(data, Mapping) or not data:
            raise ValidationError("a search space needs at least one setting", field="space")
        params: list[Param] = []
        for name, spec in data.items():
            where = f"space.{name}"
            if isinstance(spec, list | tuple):
                if not spec:
                    raise ValidationError(f"choice {name!r} lists no values", field=where)
                params.append(Choice(str(name), tuple(spec)))
            elif isinstance(spec, Mapping):
                unknown = set(spec) - _RANGE_KEYS
                if unknown or "low" not in spec or "high" not in spec:
                    raise ValidationError(
                        f"range {name!r} takes low, high and optionally log, integer",
                        field=where,
                    )
                try:
                    low, high = float(spec["low"]), float(spec["high"])
                except (TypeError, ValueError):
                    raise ValidationError(
                        f"range {name!r} bounds must be numbers", field=where
                    ) from None
                params.append(
                    Range(str(name), low, high, bool(spec.get("log")), bool(spec.get("integer")))
                )
            else:
                raise ValidationError(
                    f"setting {name!r} must be a list of choices or a {{low, high}} range",
                    field=where,
                )
        return cls(tuple(params))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def candidates(self, num_samples: int | None = None, *, seed: int = 0) -> list[Candidate]:
        """The grid (``num_samples`` None) or ``num_samples`` seeded draws, in order."""
        if num_samples is None:
            if any(isinstance(p, Range) for p in self.params):
                raise ValidationError(
                    "a space with ranges needs a number of samples (--tune N)",
                    field="num_samples",
                )
            choices = [p.values for p in self.params if isinstance(p, Choice)]
            return [
                dict(zip(self.names, combo, strict=True)) for combo in itertools.product(*choices)
            ]
        if num_samples < 1:
            raise ValidationError("num_samples must be at least 1", field="num_samples")
        rng = np.random.default_rng(seed)
        return [{p.name: p.draw(rng) for p in self.params} for _ in range(num_samples)]
