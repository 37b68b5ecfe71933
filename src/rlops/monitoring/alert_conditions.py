"""Alert conditions as small structures that render to PromQL and evaluate in Python.

A rule's condition is written once, here, as data: which metric, aggregated how over which
labels, optionally as a rate, combined as a value, a ratio or a relative change, compared
with a threshold. :meth:`Condition.promql` turns it into the expression Prometheus
evaluates; :meth:`Condition.matches` evaluates the same thing over in-process samples. The
Python side follows PromQL where the two could differ: ``x / 0`` is ``+Inf``, ``-Inf`` or
``NaN`` and comparisons with ``NaN`` are false; series pair one-to-one on identical labels;
an aggregation ``by`` a label the series lacks leaves it out of the result's labels.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from rlops.core.errors import ValidationError

#: A series' labels: (name, value) pairs sorted by name, so equal label sets compare equal.
Labels = tuple[tuple[str, str], ...]
Aggregation = Literal["max", "min", "sum"]
RangeFunction = Literal["rate", "increase"]
Op = Literal[">", ">=", "<", "<="]

_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_AGGREGATE: dict[str, Callable[[Iterable[float]], float]] = {"max": max, "min": min, "sum": sum}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def labels_of(mapping: Mapping[str, str]) -> Labels:
    return tuple(sorted(mapping.items()))


def duration(seconds: int) -> str:
    """A Prometheus duration: ``15m`` reads better in a rules file than ``900s``."""
    if seconds > 0 and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds > 0 and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def number(value: float) -> str:
    """A finite float as PromQL reads it back exactly (``900``, not ``900.0``)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def divide(a: float, b: float) -> float:
    """PromQL's division: by zero it is a signed infinity, or NaN for ``0 / 0``."""
    if b != 0.0:
        return a / b
    if a == 0.0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


class Samples(Protocol):
    """What a condition reads: each series' latest value, and each counter's rate."""

    def instant(self, metric: str) -> Iterable[tuple[Labels, float]]: ...

    def increase(self, metric: str, window_seconds: int) -> Iterable[tuple[Labels, float]]:
        """Each counter's increase over the last ``window_seconds``, resets allowed."""
        ...

    def rate(self, metric: str, window_seconds: int) -> Iterable[tuple[Labels, float]]:
        """Each counter's per-second increase over the last ``window_seconds``."""
        ...


def _check_label(name: str, what: str) -> None:
    if not _LABEL.fullmatch(name) or name.startswith("__"):
        raise ValidationError(f"{what} {name!r} is not a label name", field=what)


@dataclass(frozen=True)
class Selector:
    """``aggregation by (by) (metric{matchers})``, or of ``rate``/``increase`` over a window.

    Every selector aggregates, so an alert's labels are exactly ``by`` whatever other
    labels the exporter adds (``policy_version``, ``reason``, ``instance``).
    """

    metric: str
    by: tuple[str, ...]
    aggregation: Aggregation = "max"
    matchers: tuple[tuple[str, str], ...] = ()
    function: RangeFunction | None = None
    window_seconds: int = 0

    def __post_init__(self) -> None:
        if not _METRIC.fullmatch(self.metric):
            raise ValidationError(f"{self.metric!r} is not a metric name", field="metric")
        if self.aggregation not in _AGGREGATE:
            raise ValidationError(f"unknown aggregation {self.aggregation!r}", field="aggregation")
        for name in self.by:
            _check_label(name, "by")
        for name, value in self.matchers:
            _check_label(name, "matchers")
            if '"' in value or "\\" in value or "\n" in value:
                raise ValidationError(f"matcher value {value!r} needs escaping", field="matchers")
        if self.function not in (None, "rate", "increase"):
            raise ValidationError(f"unknown range function {self.function!r}", field="function")
        if (self.function is None) != (self.window_seconds == 0) or self.window_seconds < 0:
            raise ValidationError(
                "a rate or increase needs a window of seconds > 0, and only they take one",
                field="window_seconds",
            )

    def promql(self) -> str:
        selector = self.metric
        if self.matchers:
            selector += "{" + ", ".join(f'{k}="{v}"' for k, v in self.matchers) + "}"
        if self.function is not None:
            selector = f"{self.function}({selector}[{duration(self.window_seconds)}])"
        return f"{self.aggregation} by ({', '.join(self.by)}) ({selector})"

    def vector(self, samples: Samples) -> dict[Labels, float]:
        if self.function is None:
            series = samples.instant(self.metric)
        elif self.function == "rate":
            series = samples.rate(self.metric, self.window_seconds)
        else:
            series = samples.increase(self.metric, self.window_seconds)
        groups: dict[Labels, list[float]] = {}
        for labels, value in series:
            found = dict(labels)
            if any(found.get(name, "") != want for name, want in self.matchers):
                continue
            key = labels_of({name: found[name] for name in self.by if found.get(name)})
            groups.setdefault(key, []).append(value)
        aggregate = _AGGREGATE[self.aggregation]
        return {key: aggregate(values) for key, values in groups.items()}


@dataclass(frozen=True)
class Value:
    """The selector's value itself."""

    of: Selector

    def promql(self) -> str:
        return self.of.promql()

    def vector(self, samples: Samples) -> dict[Labels, float]:
        return self.of.vector(samples)


@dataclass(frozen=True)
class Ratio:
    """``numerator / denominator``, series paired on identical labels (a share of traffic)."""

    numerator: Selector
    denominator: Selector

    def promql(self) -> str:
        return f"{self.numerator.promql()} / {self.denominator.promql()}"

    def vector(self, samples: Samples) -> dict[Labels, float]:
        below = self.denominator.vector(samples)
        return {
            key: divide(value, below[key])
            for key, value in self.numerator.vector(samples).items()
            if key in below
        }


@dataclass(frozen=True)
class Change:
    """``(current - previous) / abs(previous)``: a relative change, right for either sign."""

    current: Selector
    previous: Selector

    def promql(self) -> str:
        before = self.previous.promql()
        return f"({self.current.promql()} - {before}) / abs({before})"

    def vector(self, samples: Samples) -> dict[Labels, float]:
        before = self.previous.vector(samples)
        return {
            key: divide(value - before[key], abs(before[key]))
            for key, value in self.current.vector(samples).items()
            if key in before
        }


Expression = Value | Ratio | Change


@dataclass(frozen=True)
class Condition:
    """``expression op threshold``; the series that satisfy it are the alert's candidates."""

    expression: Expression
    op: Op
    threshold: float

    def __post_init__(self) -> None:
        if self.op not in _COMPARE:
            raise ValidationError(f"unknown comparison {self.op!r}", field="op")
        if isinstance(self.threshold, bool) or not math.isfinite(self.threshold):
            raise ValidationError("a threshold must be a finite number", field="threshold")

    def promql(self) -> str:
        return f"{self.expression.promql()} {self.op} {number(self.threshold)}"

    def matches(self, samples: Samples) -> dict[Labels, float]:
        """The series that satisfy the condition, with the expression's value (PromQL's
        filtering comparison keeps the left-hand value)."""
        compare = _COMPARE[self.op]
        return {
            key: value
            for key, value in self.expression.vector(samples).items()
            if compare(value, self.threshold)
        }

    def selectors(self) -> tuple[Selector, ...]:
        expression = self.expression
        if isinstance(expression, Value):
            return (expression.of,)
        if isinstance(expression, Ratio):
            return (expression.numerator, expression.denominator)
        return (expression.current, expression.previous)
