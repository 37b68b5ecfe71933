"""The alert rules against Prometheus itself (promtool) and against the in-process evaluator.

Every rule has a scenario: synthetic series, one minute apart, in which one series breaks
the rule and another sits at or just inside its threshold. The expectations are written
by hand at times clear of window-edge conventions (Prometheus 3 made range windows
left-open), so they hold for promtool and for the evaluator alike. Under CI a missing
promtool fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from rlops.core.clock import ManualClock
from rlops.monitoring.alert_conditions import Labels, labels_of
from rlops.monitoring.alert_rules import (
    AlertRule,
    AlertThresholds,
    default_rules,
    render_prometheus,
)
from rlops.monitoring.alerts import AlertEvaluator, SeriesKey, series
from tests.tools import require_binary

RULES_FILE = Path(__file__).parents[2] / "src/rlops/monitoring/rules/rlops-alerts.yml"
MINUTES = 61  # samples at 0, 1, ..., 60 minutes
STEP = 60


def promtool() -> str:
    return require_binary("promtool", package="prometheus")


def steps(*runs: tuple[int, float]) -> tuple[float, ...]:
    """A gauge: ``count`` minutes at each value, in order."""
    values = tuple(value for count, value in runs for _ in range(count))
    assert len(values) == MINUTES
    return values


def counter(start: float, *runs: tuple[int, float]) -> tuple[float, ...]:
    """A counter at ``start``, then growing by ``per_minute`` for ``count`` minutes each."""
    values = [start]
    for count, per_minute in runs:
        values += [values[-1] + per_minute * (i + 1) for i in range(count)]
    assert len(values) == MINUTES
    return tuple(values)


Firing = tuple[tuple[Labels, float], ...]  # the series labels that fire, with their value


@dataclass(frozen=True)
class Scenario:
    rule: str
    series: tuple[tuple[SeriesKey, tuple[float, ...]], ...]
    expect: tuple[tuple[int, Firing], ...]  # (minute, what fires then)

    def snapshot(self, minute: int) -> dict[SeriesKey, float]:
        return {key: values[minute] for key, values in self.series}


def at(**labels: str) -> Labels:
    return labels_of(labels)


MAIN = at(app="pricing", arm="main")
NEG = at(app="pricing", arm="neg")
SHARE_NEW = at(app="pricing", arm="main", segment="new")
PRICE = at(app="pricing", feature="price_ratio")
CANDIDATE = at(alias="candidate", app="pricing")


def decisions(arm: str, fallback: str) -> SeriesKey:
    return series(
        "rlops_decisions_total",
        app="pricing",
        arm=arm,
        policy_version="v1",
        action="p0",
        segment="all",
        fallback=fallback,
    )


SCENARIOS = (
    Scenario(
        "RlopsModeCollapse",
        (
            (
                series("rlops_action_share_max", **dict(SHARE_NEW)),
                steps((10, 0.5), (30, 0.9), (21, 0.7)),
            ),
            (
                series("rlops_action_share_max", app="pricing", arm="main", segment="old"),
                steps((61, 0.8)),
            ),
        ),
        ((9, ()), (19, ()), (20, ((SHARE_NEW, 0.9),)), (39, ((SHARE_NEW, 0.9),)), (40, ())),
    ),
    Scenario(
        "RlopsRewardDrop",
        (
            (series("rlops_reward_mean", role="current", **dict(MAIN)), steps((5, 1.0), (56, 0.7))),
            (series("rlops_reward_mean", role="previous", **dict(MAIN)), steps((61, 1.0))),
            (
                series("rlops_reward_mean", role="current", **dict(NEG)),
                steps((5, -1.0), (56, -1.3)),
            ),
            (series("rlops_reward_mean", role="previous", **dict(NEG)), steps((61, -1.0))),
            (
                series("rlops_reward_mean", role="current", app="pricing", arm="canary"),
                steps((61, 0.85)),
            ),
            (
                series("rlops_reward_mean", role="previous", app="pricing", arm="canary"),
                steps((61, 1.0)),
            ),
        ),
        ((4, ()), (34, ()), (35, ((MAIN, -0.3), (NEG, -0.3))), (60, ((MAIN, -0.3), (NEG, -0.3)))),
    ),
    Scenario(
        "RlopsFeatureDrift",
        (
            (series("rlops_feature_psi", **dict(PRICE)), steps((3, 0.1), (58, 0.4))),
            (series("rlops_feature_psi", app="pricing", feature="hour"), steps((61, 0.25))),
        ),
        ((17, ()), (18, ((PRICE, 0.4),)), (60, ((PRICE, 0.4),))),
    ),
    Scenario(
        "RlopsJoinLag",
        (
            (
                series("rlops_join_lag_seconds", app="pricing"),
                steps((5, 100.0), (30, 1000.0), (26, 50.0)),
            ),
            (series("rlops_join_lag_seconds", app="advisor"), steps((61, 900.0))),
        ),
        (
            (14, ()),
            (15, ((at(app="pricing"), 1000.0),)),
            (34, ((at(app="pricing"), 1000.0),)),
            (35, ()),
        ),
    ),
    Scenario(
        "RlopsFallbackRate",
        (
            (
                series("rlops_fallbacks_total", app="pricing", arm="main", reason="load_error"),
                counter(1000.0, (10, 1.0), (50, 10.0)),
            ),
            (decisions("main", "false"), counter(100000.0, (10, 99.0), (50, 90.0))),
            (decisions("main", "true"), counter(1000.0, (10, 1.0), (50, 10.0))),
            (
                series("rlops_fallbacks_total", app="pricing", arm="canary", reason="load_error"),
                counter(1000.0, (60, 4.0)),
            ),
            (decisions("canary", "false"), counter(100000.0, (60, 96.0))),
            (decisions("canary", "true"), counter(1000.0, (60, 4.0))),
        ),
        ((10, ()), (16, ()), (19, ((MAIN, 0.1),)), (60, ((MAIN, 0.1),))),
    ),
    Scenario(
        "RlopsPolicyLoadFailure",
        (
            (
                series("rlops_policy_load_failures_total", **dict(CANDIDATE)),
                steps((20, 0.0), (41, 1.0)),
            ),
            (
                series("rlops_policy_load_failures_total", alias="production", app="pricing"),
                steps((61, 0.0)),
            ),
        ),
        ((19, ()), (20, ((CANDIDATE, 1.0),)), (28, ((CANDIDATE, 1.0),)), (31, ())),
    ),
)


def rules_by_name(rules: Sequence[AlertRule]) -> dict[str, AlertRule]:
    return {rule.name: rule for rule in rules}


def series_text(key: SeriesKey) -> str:
    name, labels = key
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"


def expected_alerts(rule: AlertRule, firing: Firing) -> list[dict[str, Any]]:
    return [
        {
            # promtool adds alertname to the expected labels itself
            "exp_labels": {k: v for k, v in rule.alert_labels(labels) if k != "alertname"},
            "exp_annotations": dict(rule.annotations(labels, value)),
        }
        for labels, value in firing
    ]


def promtool_test(
    scenario: Scenario, rule: AlertRule, expect: Sequence[tuple[int, Firing]]
) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [
            {"series": series_text(key), "values": " ".join(repr(v) for v in values)}
            for key, values in scenario.series
        ],
        "alert_rule_test": [
            {
                "eval_time": f"{minute}m",
                "alertname": scenario.rule,
                "exp_alerts": expected_alerts(rule, firing),
            }
            for minute, firing in expect
        ],
    }


def run_promtool(
    tmp_path: Path,
    rules: Sequence[AlertRule],
    tests: list[dict[str, Any]],
) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` on ``rules`` rendered to a file; the test file is JSON,
    which is YAML too."""
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(render_prometheus(rules))
    test_file = tmp_path / "tests.yml"
    test_file.write_text(
        json.dumps({"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": tests})
    )
    return subprocess.run(
        [promtool(), "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def hand_written(rules: Sequence[AlertRule]) -> list[dict[str, Any]]:
    by_name = rules_by_name(rules)
    return [promtool_test(s, by_name[s.rule], s.expect) for s in SCENARIOS]


def test_every_rule_has_a_scenario() -> None:
    names = [rule.name for rule in default_rules()]
    assert sorted(names) == sorted(s.rule for s in SCENARIOS)
    for scenario in SCENARIOS:
        assert any(firing for _, firing in scenario.expect), scenario.rule
        assert any(not firing for _, firing in scenario.expect), scenario.rule


def test_committed_rules_file_is_the_rendering_of_the_defaults() -> None:
    assert RULES_FILE.read_text() == render_prometheus(default_rules(AlertThresholds()))


def test_committed_rules_file_passes_promtool_check() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(default_rules())} rules found" in result.stdout + result.stderr


def test_rules_file_parses_as_yaml_with_the_expected_shape() -> None:
    yaml = pytest.importorskip("yaml")
    document = yaml.safe_load(RULES_FILE.read_text())
    (group,) = document["groups"]
    rules = rules_by_name(default_rules())
    assert [entry["alert"] for entry in group["rules"]] == list(rules)
    for entry in group["rules"]:
        rule = rules[entry["alert"]]
        assert entry["expr"] == rule.expr
        assert entry["labels"] == {"severity": rule.severity}
        assert entry["annotations"] == {"summary": rule.summary, "description": rule.description}


def test_promtool_fires_each_rule_when_and_only_when_expected(tmp_path: Path) -> None:
    result = run_promtool(tmp_path, default_rules(), hand_written(default_rules()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


BROKEN = [
    pytest.param("RlopsModeCollapse", {"mode_collapse_share": 0.95}, id="collapse-too-strict"),
    pytest.param("RlopsModeCollapse", {"mode_collapse_share": 0.75}, id="collapse-too-loose"),
    pytest.param("RlopsModeCollapse", {"mode_collapse_for_seconds": 1200}, id="collapse-for"),
    pytest.param("RlopsRewardDrop", {"reward_drop": 0.4}, id="reward-too-strict"),
    pytest.param("RlopsRewardDrop", {"reward_drop": 0.1}, id="reward-too-loose"),
    pytest.param("RlopsFeatureDrift", {"psi": 0.5}, id="psi-too-strict"),
    pytest.param("RlopsFeatureDrift", {"psi": 0.2}, id="psi-too-loose"),
    pytest.param("RlopsJoinLag", {"join_lag_seconds": 1200.0}, id="lag-too-strict"),
    pytest.param("RlopsJoinLag", {"join_lag_seconds": 800.0}, id="lag-too-loose"),
    pytest.param("RlopsFallbackRate", {"fallback_rate": 0.2}, id="fallback-too-strict"),
    pytest.param("RlopsFallbackRate", {"fallback_rate": 0.03}, id="fallback-too-loose"),
    pytest.param("RlopsPolicyLoadFailure", {"load_failure_window_seconds": 120}, id="load-window"),
]


@pytest.mark.parametrize(("rule", "change"), BROKEN)
def test_promtool_catches_a_broken_rule(tmp_path: Path, rule: str, change: dict[str, Any]) -> None:
    """The same expectations against rules with one threshold off must fail, and name it."""
    broken = default_rules(replace(AlertThresholds(), **change))
    result = run_promtool(tmp_path, broken, hand_written(broken))
    assert result.returncode != 0
    assert f"alertname: {rule}" in result.stderr + result.stdout
    others = {s.rule for s in SCENARIOS} - {rule}
    assert not any(f"alertname: {name}" in result.stderr + result.stdout for name in others)


def evaluator_run(rule: AlertRule, scenario: Scenario) -> list[dict[Labels, float]]:
    """What fires at each minute in process: series labels to value."""
    clock = ManualClock(0.0)
    evaluator = AlertEvaluator([rule], clock=clock)
    firing: list[dict[Labels, float]] = []
    for minute in range(MINUTES):
        clock.set(minute * STEP)
        evaluator.evaluate(scenario.snapshot(minute))
        firing.append(
            {
                tuple((k, v) for k, v in a.labels if k not in ("alertname", "severity")): a.value
                for a in evaluator.firing()
            }
        )
    return firing


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.rule)
def test_evaluator_meets_the_hand_written_expectations(scenario: Scenario) -> None:
    firing = evaluator_run(rules_by_name(default_rules())[scenario.rule], scenario)
    for minute, expected in scenario.expect:
        assert set(firing[minute]) == {labels for labels, _ in expected}, minute
        for labels, value in expected:
            assert firing[minute][labels] == pytest.approx(value), minute


def test_evaluator_and_promtool_agree_at_every_step(tmp_path: Path) -> None:
    """At every minute not next to one of the evaluator's transitions, promtool fires
    exactly what the evaluator fires, with the same labels and annotations: so each
    transition happens at the same evaluation, give or take one step."""
    rules = rules_by_name(default_rules())
    tests = []
    for scenario in SCENARIOS:
        rule = rules[scenario.rule]
        firing = evaluator_run(rule, scenario)
        expect = [
            (minute, tuple(sorted(firing[minute].items())))
            for minute in range(MINUTES)
            if firing[max(minute - 1, 0)].keys()
            == firing[minute].keys()
            == firing[min(minute + 1, MINUTES - 1)].keys()
        ]
        assert any(fired for _, fired in expect), scenario.rule
        assert len(expect) > MINUTES // 2, scenario.rule
        tests.append(promtool_test(scenario, rule, expect))
    result = run_promtool(tmp_path, list(rules.values()), tests)
    assert result.returncode == 0, result.stdout + result.stderr
