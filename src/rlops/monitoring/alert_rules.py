"""The alert rules, defined once and rendered twice: a Prometheus rules file, and the
conditions :class:`~rlops.monitoring.alerts.AlertEvaluator` checks in process.

Thresholds live in :class:`AlertThresholds`; :func:`default_rules` builds the rules from
them against the metrics the server and the joiner export. Summaries and descriptions are
Prometheus (Go) templates restricted to ``{{ $labels.NAME }}`` and
``{{ printf "%.Nf" $value }}``, a subset both renderings produce identically; anything
else is refused when the rule is built, so the two can never drift apart silently.

The committed ``rules/rlops-alerts.yml`` is ``render_prometheus(default_rules())``; a test
holds them equal. Regenerate it with
``python -m rlops.monitoring.alert_rules > src/rlops/monitoring/rules/rlops-alerts.yml``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Literal

from rlops.core.errors import ValidationError
from rlops.monitoring.alert_conditions import (
    Change,
    Condition,
    Labels,
    Ratio,
    Selector,
    Value,
    duration,
    labels_of,
)

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")
GROUP = "rlops"

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_LABEL_REF = re.compile(r"\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*")
_VALUE_REF = re.compile(r'\s*printf\s+"%\.([0-9])f"\s+\$value\s*')


def go_fixed(value: float, digits: int) -> str:
    """Go's ``printf "%.Nf"``: Python's rounding, but Go's spelling of the non-finite."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.{digits}f}"


def render_template(template: str, labels: Mapping[str, str], value: float) -> str:
    """Render the supported subset of a Prometheus annotation template.

    A missing label renders empty, as Prometheus renders it. Anything outside the subset
    raises :class:`ValidationError` rather than render differently from Prometheus.
    """

    def action(match: re.Match[str]) -> str:
        inner = match.group(1)
        if found := _LABEL_REF.fullmatch(inner):
            return labels.get(found.group(1), "")
        if found := _VALUE_REF.fullmatch(inner):
            return go_fixed(value, int(found.group(1)))
        raise ValidationError(f"unsupported template action {{{{{inner}}}}}", field="template")

    rendered = _ACTION.sub(action, template)
    if "{{" in rendered:
        raise ValidationError(f"unclosed template action in {template!r}", field="template")
    return rendered


def _check_text(value: str, what: str) -> None:
    if not value.strip() or any(ord(c) < 32 for c in value):
        raise ValidationError(f"{what} must be non-empty text on one line", field=what)


@dataclass(frozen=True)
class AlertRule:
    """One alert: a condition that must hold for ``for_seconds`` before the alert fires."""

    name: str
    condition: Condition
    for_seconds: int
    severity: Severity
    summary: str
    description: str
    labels: Labels = ()

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValidationError(f"{self.name!r} is not an alert name", field="name")
        if isinstance(self.for_seconds, bool) or self.for_seconds < 0:
            raise ValidationError("for_seconds must be an integer >= 0", field="for_seconds")
        if self.severity not in SEVERITIES:
            raise ValidationError(f"severity must be one of {SEVERITIES}", field="severity")
        for key, text in (("summary", self.summary), ("description", self.description)):
            _check_text(text, key)
            render_template(text, {}, 0.0)  # refuses what Prometheus would render otherwise
        for key, text in self.labels:
            if not _NAME.fullmatch(key) or key in ("alertname", "severity"):
                raise ValidationError(f"rule label {key!r} is not allowed", field="labels")
            _check_text(text, "labels")

    @property
    def expr(self) -> str:
        """The PromQL expression, generated from :attr:`condition`."""
        return self.condition.promql()

    def alert_labels(self, series: Labels) -> Labels:
        """The alert's labels: the series', then the rule's, ``severity`` and ``alertname``
        (later ones win, as in Prometheus)."""
        merged = dict(series)
        merged.update(self.labels)
        merged["severity"] = self.severity
        merged["alertname"] = self.name
        return labels_of(merged)

    def annotations(self, series: Labels, value: float) -> Labels:
        found = dict(series)
        return (
            ("description", render_template(self.description, found, value)),
            ("summary", render_template(self.summary, found, value)),
        )


@dataclass(frozen=True)
class AlertThresholds:
    """When each default alert fires. Durations are whole seconds.

    ``reward_drop`` is relative: 0.2 fires when the serving version's mean joined reward
    is 20% below its predecessor's (relative to the predecessor's magnitude, so it holds
    for negative rewards too).
    """

    mode_collapse_share: float = 0.8
    # 10 minutes over the monitor's 5-minute share window: a collapse that starts now
    # fires within 15 minutes (the seed's incident), and a blip shorter than that cannot.
    mode_collapse_for_seconds: int = 600
    reward_drop: float = 0.2
    reward_drop_for_seconds: int = 1800
    psi: float = 0.25
    psi_for_seconds: int = 900
    join_lag_seconds: float = 900.0
    join_lag_for_seconds: int = 600
    fallback_rate: float = 0.05
    fallback_rate_window_seconds: int = 300
    fallback_rate_for_seconds: int = 300
    load_failure_window_seconds: int = 600

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name.endswith(("_for_seconds", "_window_seconds")):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValidationError(
                        f"{item.name} must be whole seconds >= 0", field=item.name
                    )
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(f"{item.name} must be a number", field=item.name)
            elif not (math.isfinite(value) and value > 0):
                raise ValidationError(f"{item.name} must be finite and > 0", field=item.name)
        for name in ("mode_collapse_share", "fallback_rate"):
            if getattr(self, name) > 1.0:
                raise ValidationError(f"{name} is a share: at most 1", field=name)
        for name in ("fallback_rate_window_seconds", "load_failure_window_seconds"):
            if getattr(self, name) == 0:
                raise ValidationError(f"{name} must be > 0", field=name)


def default_rules(thresholds: AlertThresholds | None = None) -> tuple[AlertRule, ...]:
    """The rules for the metrics ``rlops serve`` and ``rlops join`` export."""
    t = thresholds if thresholds is not None else AlertThresholds()
    arm = ("app", "arm")
    reward = "rlops_reward_mean"
    return (
        AlertRule(
            name="RlopsModeCollapse",
            condition=Condition(
                Value(Selector("rlops_action_share_max", by=("app", "arm", "segment"))),
                ">",
                t.mode_collapse_share,
            ),
            for_seconds=t.mode_collapse_for_seconds,
            severity="critical",
            summary=(
                "{{ $labels.app }}/{{ $labels.arm }}: one action takes "
                '{{ printf "%.2f" $value }} of decisions in segment {{ $labels.segment }}'
            ),
            description=(
                f"The most chosen action's share of the last 15 minutes of decisions has been "
                f"above {t.mode_collapse_share:g} for {duration(t.mode_collapse_for_seconds)}: "
                "the policy may have collapsed onto one action."
            ),
        ),
        AlertRule(
            name="RlopsRewardDrop",
            condition=Condition(
                Change(
                    Selector(reward, by=arm, matchers=(("role", "current"),)),
                    Selector(reward, by=arm, matchers=(("role", "previous"),)),
                ),
                "<",
                -t.reward_drop,
            ),
            for_seconds=t.reward_drop_for_seconds,
            severity="critical",
            summary=(
                "{{ $labels.app }}/{{ $labels.arm }}: mean reward changed by "
                '{{ printf "%.2f" $value }} against the previous version'
            ),
            description=(
                f"The serving version's mean joined reward has been more than "
                f"{t.reward_drop:g} (relative) below the previous version's for "
                f"{duration(t.reward_drop_for_seconds)}."
            ),
        ),
        AlertRule(
            name="RlopsFeatureDrift",
            condition=Condition(
                Value(Selector("rlops_feature_psi", by=("app", "feature"))), ">", t.psi
            ),
            for_seconds=t.psi_for_seconds,
            severity="warning",
            summary=(
                "{{ $labels.app }}: feature {{ $labels.feature }} drifted "
                '(PSI {{ printf "%.2f" $value }})'
            ),
            description=(
                f"The population stability index of this feature against the training "
                f"snapshot has been above {t.psi:g} for {duration(t.psi_for_seconds)}."
            ),
        ),
        AlertRule(
            name="RlopsJoinLag",
            condition=Condition(
                Value(Selector("rlops_join_lag_seconds", by=("app",))), ">", t.join_lag_seconds
            ),
            for_seconds=t.join_lag_for_seconds,
            severity="warning",
            summary=('{{ $labels.app }}: the reward joiner is {{ printf "%.0f" $value }} s behind'),
            description=(
                f"The joiner has lagged more than {t.join_lag_seconds:g} s for "
                f"{duration(t.join_lag_for_seconds)}: rewards, reward alerts and "
                "retraining are stale."
            ),
        ),
        AlertRule(
            name="RlopsFallbackRate",
            condition=Condition(
                Ratio(
                    Selector(
                        "rlops_fallbacks_total",
                        by=arm,
                        aggregation="sum",
                        function="rate",
                        window_seconds=t.fallback_rate_window_seconds,
                    ),
                    Selector(
                        "rlops_decisions_total",
                        by=arm,
                        aggregation="sum",
                        function="rate",
                        window_seconds=t.fallback_rate_window_seconds,
                    ),
                ),
                ">",
                t.fallback_rate,
            ),
            for_seconds=t.fallback_rate_for_seconds,
            severity="critical",
            summary=(
                "{{ $labels.app }}/{{ $labels.arm }}: "
                '{{ printf "%.3f" $value }} of decisions fall back to the baseline rules'
            ),
            description=(
                f"More than {t.fallback_rate:g} of this arm's decisions over "
                f"{duration(t.fallback_rate_window_seconds)} were answered by the baseline "
                f"rules, for {duration(t.fallback_rate_for_seconds)}."
            ),
        ),
        AlertRule(
            name="RlopsPolicyLoadFailure",
            condition=Condition(
                Value(
                    Selector(
                        "rlops_policy_load_failures_total",
                        by=("app", "alias"),
                        aggregation="sum",
                        function="increase",
                        window_seconds=t.load_failure_window_seconds,
                    )
                ),
                ">",
                0.0,
            ),
            for_seconds=0,
            severity="warning",
            summary="{{ $labels.app }}: a policy for alias {{ $labels.alias }} failed to load",
            description=(
                f"A policy version failed to load or verify in the last "
                f"{duration(t.load_failure_window_seconds)}; servers kept the version "
                "they had."
            ),
        ),
    )


def _quoted(text: str) -> str:
    """A YAML single-quoted scalar: no escapes but a doubled quote, so PromQL stays legible."""
    return "'" + text.replace("'", "''") + "'"


def render_prometheus(rules: Sequence[AlertRule], *, group: str = GROUP) -> str:
    """A Prometheus rules file holding ``rules`` in one group."""
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise ValidationError("alert names must be unique", field="rules")
    lines = [
        "# Generated by rlops.monitoring.alert_rules.render_prometheus: edit the rules there,",
        "# then run, from the repository root:",
        "#   python -m rlops.monitoring.alert_rules > src/rlops/monitoring/rules/rlops-alerts.yml",
        "groups:",
        f"  - name: {_quoted(group)}",
        "    rules:",
    ]
    for rule in rules:
        lines += [
            f"      - alert: {rule.name}",
            f"        expr: {_quoted(rule.expr)}",
            f"        for: {duration(rule.for_seconds)}",
            "        labels:",
            *(f"          {key}: {_quoted(value)}" for key, value in rule.labels),
            f"          severity: {_quoted(rule.severity)}",
            "        annotations:",
            f"          summary: {_quoted(rule.summary)}",
            f"          description: {_quoted(rule.description)}",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_prometheus(default_rules()), end="")
