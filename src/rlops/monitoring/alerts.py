"""Alerts, and the evaluator that raises them in process where no Prometheus runs.

:class:`AlertEvaluator` applies Prometheus's alerting semantics to snapshots of metric
values taken on an injected clock: a series that meets a rule's condition becomes
pending, fires once it has met it for the rule's ``for`` duration (at once for 0), and
resolves at the first evaluation where it no longer does; a pending series that stops
meeting it is forgotten. Only transitions are returned: one ``firing`` alert when an
alert starts, one ``resolved`` when it ends.

Counter rates come from the snapshots themselves: the evaluator keeps the counters of
the last window; ``increase`` is the increase over the samples in ``[now - window, now]``
(counter resets allowed) and ``rate`` that divided by the time they span. For a window
the samples cover these are Prometheus's numbers. For a series younger than the window
Prometheus extrapolates towards the window's edges: a larger increase, but no change to
whether it is above zero, nor to a ratio of two rates over the same scrapes.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry

from rlops.core.clock import Clock
from rlops.core.errors import ValidationError
from rlops.monitoring.alert_conditions import Labels, labels_of
from rlops.monitoring.alert_rules import AlertRule

AlertState = Literal["firing", "resolved"]
#: A series: its metric name and labels. A snapshot maps each series to its value now.
SeriesKey = tuple[str, Labels]
Snapshot = Mapping[SeriesKey, float]

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF


def series(metric: str, **labels: str) -> SeriesKey:
    return metric, labels_of(labels)


def fingerprint(labels: Labels) -> str:
    """FNV-1a (64 bit) over the sorted names and values, each followed by 0xff: the way
    Alertmanager fingerprints a label set, so receivers see the ids they know."""
    digest = _FNV_OFFSET
    for name, value in sorted(labels):
        for part in (name, value):
            for byte in (*part.encode(), _SEPARATOR):
                digest = ((digest ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{digest:016x}"


@dataclass(frozen=True)
class Alert:
    """One transition of one alert. ``labels`` include ``alertname`` and ``severity``;
    ``starts_at`` is when it fired, ``ends_at`` when it resolved (``None`` while firing);
    ``value`` is the condition's value at the transition (Unix seconds throughout)."""

    name: str
    labels: Labels
    state: AlertState
    starts_at: float
    ends_at: float | None
    value: float
    annotations: Labels

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)

    def annotation(self, name: str) -> str:
        return dict(self.annotations).get(name, "")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "labels": dict(self.labels),
            "state": self.state,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "value": self.value if math.isfinite(self.value) else repr(self.value),
            "annotations": dict(self.annotations),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        state = data.get("state")
        if state not in ("firing", "resolved"):
            raise ValidationError(f"unknown alert state {state!r}", field="state")
        try:
            ends_at = data["ends_at"]
            return cls(
                name=str(data["name"]),
                labels=labels_of({str(k): str(v) for k, v in data["labels"].items()}),
                state=state,
                starts_at=float(data["starts_at"]),
                ends_at=None if ends_at is None else float(ends_at),
                value=float(data["value"]),
                annotations=labels_of({str(k): str(v) for k, v in data["annotations"].items()}),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise ValidationError(f"not an alert: {error!r}", field="alert") from None


def snapshot_of(registry: CollectorRegistry) -> dict[SeriesKey, float]:
    """The current value of every counter and gauge sample in a prometheus_client
    registry (the server's own), under its exported name (``rlops_decisions_total``)."""
    snapshot: dict[SeriesKey, float] = {}
    for family in registry.collect():
        if family.type not in ("counter", "gauge"):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            snapshot[series(sample.name, **sample.labels)] = float(sample.value)
    return snapshot


@dataclass
class _Active:
    """A series that meets its rule's condition: pending until ``fired_at`` is set."""

    active_at: float
    value: float
    fired_at: float | None = None


class _Samples:
    """The :class:`~rlops.monitoring.alert_conditions.Samples` of one evaluation."""

    def __init__(
        self,
        now: float,
        snapshot: Snapshot,
        history: Sequence[tuple[float, Mapping[SeriesKey, float]]],
    ) -> None:
        self.now = now
        self.snapshot = snapshot
        self.history = history

    def instant(self, metric: str) -> Iterator[tuple[Labels, float]]:
        for (name, labels), value in self.snapshot.items():
            if name == metric:
                yield labels, value

    def increase(self, metric: str, window_seconds: int) -> Iterator[tuple[Labels, float]]:
        for labels, increase, _ in self._increases(metric, window_seconds):
            yield labels, increase

    def rate(self, metric: str, window_seconds: int) -> Iterator[tuple[Labels, float]]:
        for labels, increase, span in self._increases(metric, window_seconds):
            yield labels, increase / span

    def _increases(self, metric: str, window_seconds: int) -> Iterator[tuple[Labels, float, float]]:
        """Each series' increase over the samples in ``[now - window, now]`` and the
        seconds they span; none for a series with a single sample (as in Prometheus)."""
        points: dict[Labels, list[tuple[float, float]]] = {}
        for at, counters in self.history:
            if at < self.now - window_seconds:
                continue
            for (name, labels), value in counters.items():
                if name == metric:
                    points.setdefault(labels, []).append((at, value))
        for labels, found in points.items():
            span = found[-1][0] - found[0][0]
            if span <= 0.0:
                continue
            increase = 0.0
            for (_, before), (_, after) in itertools.pairwise(found):
                increase += after - before if after >= before else after  # a reset
            yield labels, increase, span


class AlertEvaluator:
    """Evaluates rules over snapshots; ``evaluate`` returns the transitions it caused.

    Thread-safe: evaluations are serialised, so a metrics loop and a test may share one.
    """

    def __init__(self, rules: Sequence[AlertRule], *, clock: Clock) -> None:
        names = [rule.name for rule in rules]
        if len(set(names)) != len(names):
            raise ValidationError("alert names must be unique", field="rules")
        self.rules = tuple(rules)
        self.clock = clock
        self._counters = frozenset(
            s.metric for r in rules for s in r.condition.selectors() if s.function is not None
        )
        self._window = max(
            (s.window_seconds for r in rules for s in r.condition.selectors()), default=0
        )
        self._history: deque[tuple[float, dict[SeriesKey, float]]] = deque()
        self._active: dict[str, dict[Labels, _Active]] = {rule.name: {} for rule in rules}
        self._lock = threading.Lock()

    def evaluate(self, snapshot: Snapshot) -> list[Alert]:
        """Evaluate every rule at ``clock.now()`` over ``snapshot`` (all series, now)."""
        with self._lock:
            now = self.clock.now()
            if self._history and now < self._history[-1][0]:
                raise ValidationError("evaluations must not go back in time", field="clock")
            self._remember(now, snapshot)
            samples = _Samples(now, snapshot, self._history)
            transitions: list[Alert] = []
            for rule in self.rules:
                transitions += self._step(rule, rule.condition.matches(samples), now)
            return transitions

    def firing(self) -> list[Alert]:
        """The alerts firing now, as of the last evaluation."""
        with self._lock:
            return [
                self._alert(rule, labels, state, "firing", None)
                for rule in self.rules
                for labels, state in sorted(self._active[rule.name].items())
                if state.fired_at is not None
            ]

    def _remember(self, now: float, snapshot: Snapshot) -> None:
        counters = {key: value for key, value in snapshot.items() if key[0] in self._counters}
        self._history.append((now, counters))
        while self._history and self._history[0][0] < now - self._window:
            self._history.popleft()

    def _step(
        self, rule: AlertRule, matched: Mapping[Labels, float], now: float
    ) -> Iterable[Alert]:
        active = self._active[rule.name]
        for labels in sorted(set(active) - set(matched)):
            state = active.pop(labels)
            if state.fired_at is not None:
                yield self._alert(rule, labels, state, "resolved", now)
        for labels, value in sorted(matched.items()):
            state = active.setdefault(labels, _Active(active_at=now, value=value))
            state.value = value
            if state.fired_at is None and now - state.active_at >= rule.for_seconds:
                state.fired_at = now
                yield self._alert(rule, labels, state, "firing", None)

    @staticmethod
    def _alert(
        rule: AlertRule, labels: Labels, state: _Active, kind: AlertState, ends_at: float | None
    ) -> Alert:
        assert state.fired_at is not None  # only fired alerts are reported
        return Alert(
            name=rule.name,
            labels=rule.alert_labels(labels),
            state=kind,
            starts_at=state.fired_at,
            ends_at=ends_at,
            value=state.value,
            annotations=rule.annotations(labels, state.value),
        )
