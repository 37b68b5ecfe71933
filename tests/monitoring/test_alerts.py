"""The in-process evaluator, the conditions it shares with PromQL, and the rule records."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from rlops.core.clock import ManualClock
from rlops.core.errors import ValidationError
from rlops.monitoring.alert_conditions import (
    Change,
    Condition,
    Ratio,
    Selector,
    Value,
    divide,
    duration,
    labels_of,
)
from rlops.monitoring.alert_rules import (
    AlertRule,
    AlertThresholds,
    default_rules,
    render_prometheus,
    render_template,
)
from rlops.monitoring.alerts import Alert, AlertEvaluator, fingerprint, series, snapshot_of

SHARE = "rlops_action_share_max"


def rule(condition: Condition, for_seconds: int = 0, **changes: Any) -> AlertRule:
    base = AlertRule(
        name="Test",
        condition=condition,
        for_seconds=for_seconds,
        severity="warning",
        summary='{{ $labels.arm }} at {{ printf "%.2f" $value }}',
        description="a test rule",
    )
    return replace(base, **changes)


def share_rule(for_seconds: int = 0) -> AlertRule:
    return rule(Condition(Value(Selector(SHARE, by=("app", "arm"))), ">", 0.8), for_seconds)


def share(value: float, arm: str = "main", **extra: str) -> dict[tuple[str, Any], float]:
    return {series(SHARE, app="pricing", arm=arm, **extra): value}


# -- PromQL rendering --------------------------------------------------------------------


def test_default_rules_render_the_expected_promql() -> None:
    exprs = {r.name: r.expr for r in default_rules()}
    assert exprs == {
        "RlopsModeCollapse": "max by (app, arm, segment) (rlops_action_share_max) > 0.8",
        "RlopsRewardDrop": (
            '(max by (app, arm) (rlops_reward_mean{role="current"}) - max by (app, arm) '
            '(rlops_reward_mean{role="previous"})) / abs(max by (app, arm) '
            '(rlops_reward_mean{role="previous"})) < -0.2'
        ),
        "RlopsFeatureDrift": "max by (app, feature) (rlops_feature_psi) > 0.25",
        "RlopsJoinLag": "max by (app) (rlops_join_lag_seconds) > 900",
        "RlopsFallbackRate": (
            "sum by (app, arm) (rate(rlops_fallbacks_total[5m])) / "
            "sum by (app, arm) (rate(rlops_decisions_total[5m])) > 0.05"
        ),
        "RlopsPolicyLoadFailure": (
            "sum by (app, alias) (increase(rlops_policy_load_failures_total[10m])) > 0"
        ),
    }
    assert {r.name: r.for_seconds for r in default_rules()} == {
        "RlopsModeCollapse": 600,
        "RlopsRewardDrop": 1800,
        "RlopsFeatureDrift": 900,
        "RlopsJoinLag": 600,
        "RlopsFallbackRate": 300,
        "RlopsPolicyLoadFailure": 0,
    }


def test_thresholds_change_the_rules() -> None:
    rules = default_rules(AlertThresholds(mode_collapse_share=0.9, fallback_rate_window_seconds=90))
    exprs = {r.name: r.expr for r in rules}
    assert exprs["RlopsModeCollapse"].endswith("> 0.9")
    assert "rate(rlops_fallbacks_total[90s])" in exprs["RlopsFallbackRate"]


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (45, "45s"), (90, "90s"), (600, "10m"), (7200, "2h")]
)
def test_duration(seconds: int, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [(1.0, 4.0, 0.25), (1.0, 0.0, math.inf), (-1.0, 0.0, -math.inf), (0.0, 0.0, math.nan)],
)
def test_divide_follows_promql(a: float, b: float, expected: float) -> None:
    result = divide(a, b)
    assert result == expected or (math.isnan(result) and math.isnan(expected))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Selector("bad-name", by=("app",)),
        lambda: Selector(SHARE, by=("__name__",)),
        lambda: Selector(SHARE, by=("app",), matchers=(("role", 'a"b'),)),
        lambda: Selector(SHARE, by=("app",), function="rate"),
        lambda: Selector(SHARE, by=("app",), window_seconds=60),
        lambda: Selector(SHARE, by=("app",), aggregation="avg"),  # type: ignore[arg-type]
        lambda: Condition(Value(Selector(SHARE, by=("app",))), "==", 1.0),  # type: ignore[arg-type]
        lambda: Condition(Value(Selector(SHARE, by=("app",))), ">", math.nan),
    ],
)
def test_invalid_conditions_are_refused(make: Any) -> None:
    with pytest.raises(ValidationError):
        make()


# -- templates and records --------------------------------------------------------------


def test_templates_render_labels_and_values_as_prometheus_does() -> None:
    labels = {"app": "pricing", "arm": "main"}
    template = '{{ $labels.app }}/{{$labels.arm}}: {{ printf "%.2f" $value }}{{ $labels.none }}'
    assert render_template(template, labels, 0.825) == "pricing/main: 0.82"
    assert render_template('{{ printf "%.1f" $value }}', {}, math.inf) == "+Inf"
    assert render_template('{{ printf "%.1f" $value }}', {}, -math.inf) == "-Inf"
    assert render_template('{{ printf "%.1f" $value }}', {}, math.nan) == "NaN"


@pytest.mark.parametrize(
    "template", ["{{ $value }}", "{{ humanize $value }}", "{{ $labels.app ", "{{ .Labels.app }}"]
)
def test_templates_outside_the_subset_are_refused(template: str) -> None:
    with pytest.raises(ValidationError):
        render_template(template, {"app": "pricing"}, 1.0)
    with pytest.raises(ValidationError):
        rule(Condition(Value(Selector(SHARE, by=("app",))), ">", 0.8), summary=template)


@pytest.mark.parametrize(
    "change",
    [
        {"name": "bad name"},
        {"for_seconds": -1},
        {"severity": "page"},
        {"summary": ""},
        {"description": "two\nlines"},
        {"labels": (("severity", "critical"),)},
        {"labels": (("team", ""),)},
    ],
)
def test_invalid_rules_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        rule(Condition(Value(Selector(SHARE, by=("app",))), ">", 0.8), **change)


@pytest.mark.parametrize(
    "change",
    [
        {"mode_collapse_share": 1.5},
        {"mode_collapse_share": 0.0},
        {"fallback_rate": math.nan},
        {"psi": True},
        {"reward_drop": -0.2},
        {"join_lag_seconds": math.inf},
        {"psi_for_seconds": -60},
        {"psi_for_seconds": 1.5},
        {"fallback_rate_window_seconds": 0},
        {"load_failure_window_seconds": 0},
    ],
)
def test_invalid_thresholds_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AlertThresholds(**change)


def test_rule_labels_are_rendered_and_merged() -> None:
    tagged = replace(share_rule(), labels=(("team", "pricing-ml"),))
    assert "          team: 'pricing-ml'" in render_prometheus([tagged])
    assert tagged.alert_labels(labels_of({"arm": "main", "team": "other"})) == (
        ("alertname", "Test"),
        ("arm", "main"),
        ("severity", "warning"),
        ("team", "pricing-ml"),
    )
    with pytest.raises(ValidationError):
        render_prometheus([share_rule(), share_rule()])


def test_alert_round_trips_through_json() -> None:
    alert = Alert(
        name="Test",
        labels=labels_of({"alertname": "Test", "arm": "main"}),
        state="resolved",
        starts_at=60.0,
        ends_at=120.0,
        value=0.9,
        annotations=(("summary", "s"),),
    )
    assert Alert.from_json(alert.to_json()) == alert
    with pytest.raises(ValidationError):
        Alert.from_json({**alert.to_json(), "state": "pending"})
    with pytest.raises(ValidationError):
        Alert.from_json({**alert.to_json(), "labels": None})


def test_fingerprint_depends_on_the_label_set_only() -> None:
    a = fingerprint(labels_of({"alertname": "X", "arm": "main"}))
    assert a == fingerprint((("arm", "main"), ("alertname", "X")))
    assert a != fingerprint(labels_of({"alertname": "X", "arm": "canary"}))
    assert len(a) == 16 and int(a, 16) >= 0
    assert fingerprint(()) == "cbf29ce484222325"  # FNV-1a's offset basis: nothing hashed


# -- the evaluator ----------------------------------------------------------------------


def test_alert_is_pending_for_its_duration_then_fires_once_then_resolves() -> None:
    clock = ManualClock(1000.0)
    evaluator = AlertEvaluator([share_rule(for_seconds=300)], clock=clock)
    assert evaluator.evaluate(share(0.9)) == []  # pending
    clock.advance(240)
    assert evaluator.evaluate(share(0.95)) == []
    assert evaluator.firing() == []
    clock.advance(60)
    (fired,) = evaluator.evaluate(share(0.92))
    assert fired.state == "firing"
    assert (fired.starts_at, fired.ends_at, fired.value) == (1300.0, None, 0.92)
    assert dict(fired.labels) == {
        "alertname": "Test",
        "app": "pricing",
        "arm": "main",
        "severity": "warning",
    }
    assert fired.annotation("summary") == "main at 0.92"
    clock.advance(60)
    assert evaluator.evaluate(share(0.93)) == []  # still firing: no new transition
    assert [a.value for a in evaluator.firing()] == [0.93]
    clock.advance(60)
    (resolved,) = evaluator.evaluate(share(0.5))
    assert resolved.state == "resolved"
    assert (resolved.starts_at, resolved.ends_at) == (1300.0, 1420.0)
    assert resolved.fingerprint == fired.fingerprint
    assert evaluator.firing() == []


def test_a_condition_that_lapses_before_its_duration_never_fires() -> None:
    clock = ManualClock(0.0)
    evaluator = AlertEvaluator([share_rule(for_seconds=300)], clock=clock)
    for value in (0.9, 0.9, 0.5, 0.9, 0.9, 0.9, 0.9, 0.9):
        assert evaluator.evaluate(share(value)) == []
        clock.advance(60)


def test_each_series_is_an_alert_of_its_own_and_labels_aggregate() -> None:
    clock = ManualClock(0.0)
    evaluator = AlertEvaluator([share_rule()], clock=clock)
    snapshot = {
        **share(0.9, arm="main", segment="a"),
        **share(0.7, arm="main", segment="b"),  # max by (app, arm): main is 0.9
        **share(0.85, arm="canary"),
        **share(0.1, arm="control"),
    }
    fired = evaluator.evaluate(snapshot)
    assert [(a.label("arm"), a.value) for a in fired] == [("canary", 0.85), ("main", 0.9)]
    assert all(a.label("segment") is None for a in fired)


def fallback_rule() -> AlertRule:
    rule_ = {r.name: r for r in default_rules()}["RlopsFallbackRate"]
    return replace(rule_, for_seconds=0)


def traffic(decided: float, fell_back: float) -> dict[tuple[str, Any], float]:
    return {
        series("rlops_decisions_total", app="pricing", arm="main", fallback="false"): decided,
        series("rlops_fallbacks_total", app="pricing", arm="main", reason="timeout"): fell_back,
    }


def test_rates_come_from_consecutive_snapshots_and_survive_counter_resets() -> None:
    clock = ManualClock(0.0)
    evaluator = AlertEvaluator([fallback_rule()], clock=clock)
    assert evaluator.evaluate(traffic(1000, 10)) == []  # one sample: no rate yet
    clock.advance(60)
    assert evaluator.evaluate(traffic(1100, 11)) == []  # 1 / 100
    clock.advance(60)
    (fired,) = evaluator.evaluate(traffic(50, 10))  # restarted: +50 decisions, +10 fallbacks
    assert fired.value == pytest.approx(11 / 150)
    clock.advance(60)  # the reset's window: 12 fallbacks in 250 decisions, below 0.05
    (resolved,) = evaluator.evaluate(traffic(150, 11))
    assert (resolved.state, resolved.ends_at) == ("resolved", 180.0)


def test_no_decisions_means_no_fallback_alert() -> None:
    clock = ManualClock(0.0)
    evaluator = AlertEvaluator([fallback_rule()], clock=clock)
    for _ in range(3):
        assert evaluator.evaluate(traffic(1000, 10)) == []  # 0 / 0 is NaN: not above 0.05
        clock.advance(60)


def reward_rule() -> AlertRule:
    arm = ("app", "arm")
    return rule(
        Condition(
            Change(
                Selector("rlops_reward_mean", by=arm, matchers=(("role", "current"),)),
                Selector("rlops_reward_mean", by=arm, matchers=(("role", "previous"),)),
            ),
            "<",
            -0.2,
        )
    )


@pytest.mark.parametrize(
    ("current", "previous", "fires"),
    [
        (0.7, 1.0, True),
        (0.9, 1.0, False),
        (-1.3, -1.0, True),  # more negative: worse
        (-0.7, -1.0, False),  # less negative: better
        (-0.1, 0.0, True),  # from nothing to a loss: -Inf
        (0.0, 0.0, False),  # 0 / 0 is NaN
        (0.1, 0.0, False),
    ],
)
def test_reward_change_is_relative_to_the_previous_magnitude(
    current: float, previous: float, fires: bool
) -> None:
    evaluator = AlertEvaluator([reward_rule()], clock=ManualClock(0.0))
    snapshot = {
        series("rlops_reward_mean", app="pricing", arm="main", role="current"): current,
        series("rlops_reward_mean", app="pricing", arm="main", role="previous"): previous,
    }
    assert bool(evaluator.evaluate(snapshot)) is fires


def test_a_change_without_a_previous_version_is_no_alert() -> None:
    evaluator = AlertEvaluator([reward_rule()], clock=ManualClock(0.0))
    snapshot = {series("rlops_reward_mean", app="pricing", arm="main", role="current"): -5.0}
    assert evaluator.evaluate(snapshot) == []


def test_ratio_pairs_series_on_identical_labels() -> None:
    condition = Condition(
        Ratio(Selector("a", by=("arm",), aggregation="sum"), Selector("b", by=("arm",))), ">", 0.5
    )
    evaluator = AlertEvaluator([rule(condition)], clock=ManualClock(0.0))
    fired = evaluator.evaluate(
        {series("a", arm="x"): 3.0, series("b", arm="x"): 4.0, series("a", arm="y"): 9.0}
    )
    assert [(a.label("arm"), a.value) for a in fired] == [("x", 0.75)]


def test_evaluations_cannot_go_back_in_time_and_names_are_unique() -> None:
    clock = ManualClock(100.0)
    evaluator = AlertEvaluator([share_rule()], clock=clock)
    evaluator.evaluate({})

    class Backwards:
        def now(self) -> float:
            return 50.0

    evaluator.clock = Backwards()
    with pytest.raises(ValidationError):
        evaluator.evaluate({})
    with pytest.raises(ValidationError):
        AlertEvaluator([share_rule(), share_rule()], clock=clock)


def test_snapshot_of_a_prometheus_client_registry() -> None:
    registry = CollectorRegistry()
    decisions = Counter("rlops_decisions", "d", ["app", "arm"], registry=registry)
    gauge = Gauge("rlops_action_share_max", "s", ["app", "arm", "segment"], registry=registry)
    decisions.labels("pricing", "main").inc(3)
    gauge.labels("pricing", "main", "all").set(0.4)
    assert snapshot_of(registry) == {
        series("rlops_decisions_total", app="pricing", arm="main"): 3.0,
        series("rlops_action_share_max", app="pricing", arm="main", segment="all"): 0.4,
    }


def test_load_failure_fires_at_once_on_an_increase_and_resolves_after_the_window() -> None:
    load = {r.name: r for r in default_rules()}["RlopsPolicyLoadFailure"]
    clock = ManualClock(0.0)
    evaluator = AlertEvaluator([load], clock=clock)
    key = series("rlops_policy_load_failures_total", app="pricing", alias="candidate")
    assert evaluator.evaluate({key: 0.0}) == []
    clock.advance(60)
    (fired,) = evaluator.evaluate({key: 2.0})
    assert (fired.label("alias"), fired.value) == ("candidate", 2.0)
    clock.advance(600)
    (resolved,) = evaluator.evaluate({key: 2.0})
    assert resolved.state == "resolved"
