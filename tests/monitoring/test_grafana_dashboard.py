"""The Grafana dashboard: committed as generated, laid out without overlaps, and querying
only the series rlops exports, with the labels they carry, through the dashboard's
variables. Under CI a missing promtool fails the PromQL syntax check instead of skipping.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rlops.monitoring.alert_rules import AlertThresholds
from rlops.monitoring.grafana_dashboard import dashboard
from tests.tools import require_binary

GRAFANA = Path(__file__).parents[2] / "src/rlops/monitoring/grafana"
DASHBOARD_FILE = GRAFANA / "rlops-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Labels Prometheus adds to every scraped series; `le` only on histogram buckets.
TARGET_LABELS = frozenset({"job", "instance"})


@dataclass(frozen=True)
class Metric:
    kind: str  # counter | gauge | histogram
    labels: frozenset[str]


def _m(kind: str, *labels: str) -> Metric:
    return Metric(kind, frozenset(labels))


# What the server and the monitoring jobs export: the only names a panel may query.
EXPORTED: dict[str, Metric] = {
    "rlops_decisions_total": _m(
        "counter", "app", "arm", "policy_version", "action", "segment", "fallback"
    ),
    "rlops_decisions_explored_total": _m("counter", "app", "arm"),
    "rlops_request_seconds": _m("histogram", "route"),
    "rlops_fallbacks_total": _m("counter", "app", "arm", "reason"),
    "rlops_feature_defaults_total": _m("counter", "app", "feature"),
    "rlops_feature_store_unavailable_total": _m("counter", "app"),
    "rlops_requests_refused_total": _m("counter", "route", "reason"),
    "rlops_client_errors_total": _m("counter", "route", "code"),
    "rlops_log_commit_seconds": _m("histogram", "kind"),
    "rlops_log_pending": _m("gauge"),
    "rlops_policy_info": _m("gauge", "app", "arm", "alias", "version"),
    "rlops_policy_load_failures_total": _m("counter", "app", "alias"),
    "rlops_policy_swaps_total": _m("counter", "app", "alias"),
    "rlops_action_share_max": _m("gauge", "app", "arm", "segment"),
    "rlops_policy_kl": _m("gauge", "app", "arm"),
    "rlops_feature_psi": _m("gauge", "app", "feature"),
    "rlops_state_coverage": _m("gauge", "app"),
    "rlops_reward_mean": _m("gauge", "app", "arm", "role"),
    "rlops_join_lag_seconds": _m("gauge", "app"),
    "rlops_outcomes_total": _m("counter", "app", "status"),
    "rlops_reward": _m("histogram", "app", "policy_version", "arm"),
}

_TOKEN = re.compile(r"rlops_[a-z_]+")
_SELECTOR = re.compile(r"(rlops_[a-z_]+)(?:\{([^}]*)\})?")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"\s*')
_GROUPING = re.compile(r"\b(?:by|on|ignoring|without)\s*\(([^)]*)\)")


def exported(series: str) -> tuple[str, Metric] | None:
    """The exported metric a series name belongs to, or None.

    Counters and gauges are exported under their own name (counters with ``_total``,
    which is part of the name, not a suffix to strip); a histogram only as
    ``NAME_bucket``, ``NAME_sum`` and ``NAME_count``, never bare.
    """
    metric = EXPORTED.get(series)
    if metric is not None:
        return None if metric.kind == "histogram" else (series, metric)
    for suffix in HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and (found := EXPORTED.get(base)) and found.kind == "histogram":
            return base, found
    return None


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        ("rlops_decisions_total", "rlops_decisions_total"),
        ("rlops_log_pending", "rlops_log_pending"),
        ("rlops_reward_sum", "rlops_reward"),
        ("rlops_reward_count", "rlops_reward"),
        ("rlops_request_seconds_bucket", "rlops_request_seconds"),
        ("rlops_reward_mean", "rlops_reward_mean"),
        ("rlops_reward", None),  # a histogram is never exported bare
        ("rlops_decisions", None),  # the counter's name carries _total
        ("rlops_decisions_total_count", None),  # suffixes only on histograms
        ("rlops_log_pending_bucket", None),
        ("rlops_reward_bucket_sum", None),
        ("rlops_unknown_total", None),
    ],
)
def test_series_names_resolve_to_exported_metrics(series: str, expected: str | None) -> None:
    found = exported(series)
    assert (found[0] if found else None) == expected


def panels() -> list[dict[str, Any]]:
    return list(dashboard()["panels"])


def queries() -> Iterator[tuple[str, str]]:
    """``(panel title, expr)`` for every target of every panel."""
    for panel in panels():
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def test_committed_json_is_the_generated_one() -> None:
    assert DASHBOARD_FILE.read_text() == json.dumps(dashboard(), indent=2) + "\n", (
        "regenerate: python -m rlops.monitoring.grafana_dashboard "
        "> src/rlops/monitoring/grafana/rlops-dashboard.json"
    )


def test_dashboard_settings_and_variables() -> None:
    model = dashboard()
    assert (model["uid"], model["refresh"], model["id"]) == ("rlops", "30s", None)
    assert 36 <= model["schemaVersion"] <= 41
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert list(variables) == ["datasource", "app", "arm"]
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == (
        "datasource",
        "prometheus",
    )
    assert variables["app"]["definition"] == "label_values(rlops_decisions_total, app)"
    assert variables["arm"]["definition"].startswith("label_values(rlops_decisions_total{")
    for name in ("app", "arm"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == DATASOURCE
        assert variables[name]["query"]["query"] == variables[name]["definition"]


def test_firing_alerts_are_annotated() -> None:
    annotations = dashboard()["annotations"]["list"]
    alerts = [a for a in annotations if a.get("expr") == 'ALERTS{alertstate="firing"}']
    assert len(alerts) == 1
    assert alerts[0]["datasource"] == DATASOURCE
    assert alerts[0]["enable"] is True


def test_panel_ids_are_unique_and_the_grid_has_no_overlaps() -> None:
    ids = [panel["id"] for panel in panels()]
    assert len(set(ids)) == len(ids)
    taken: dict[tuple[int, int], str] = {}
    for panel in panels():
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["y"] >= 0
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_every_panel_queries_through_the_datasource_variable() -> None:
    for panel in panels():
        if panel["type"] == "row":
            assert "targets" not in panel, panel["title"]
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]


def test_queries_use_only_exported_metrics_and_their_labels() -> None:
    used: set[str] = set()
    for title, expr in queries():
        metrics: dict[str, Metric] = {}
        for token in _TOKEN.findall(expr):
            found = exported(token)
            assert found is not None, f"{title}: {token} is not an exported series"
            metrics[found[0]] = found[1]
        assert metrics, f"{title}: queries no rlops series"
        used |= metrics.keys()
        for series, matchers in _SELECTOR.findall(expr):
            name, metric = exported(series) or ("", _m("gauge"))
            allowed = metric.labels | TARGET_LABELS
            if series.endswith("_bucket"):
                allowed |= {"le"}
            parts = [part for part in matchers.split(",") if part.strip()]
            parsed = [_MATCHER.fullmatch(part) for part in parts]
            labels = {found.group(1): found.group(2, 3) for found in parsed if found}
            assert len(labels) == len(parts), f"{title}: unparsed {series}{{{matchers}}}"
            assert labels.keys() <= allowed, f"{title}: {name} has no {labels.keys() - allowed}"
            # Every series is filtered by the variables its labels allow.
            for label in ("app", "arm"):
                if label in metric.labels:
                    assert labels.get(label) == ("=~", f"${label}"), f"{title}: {series} ${label}"
        grouped = {
            label.strip() for group in _GROUPING.findall(expr) for label in group.split(",")
        } - {""}
        carried = set().union(*(m.labels for m in metrics.values())) | TARGET_LABELS | {"le"}
        assert grouped <= carried, f"{title}: grouping by {grouped - carried}"
    assert used == EXPORTED.keys(), f"no panel for {EXPORTED.keys() - used}"


def test_only_the_server_wide_panels_are_not_filtered_by_app() -> None:
    # Request, 503, 4xx and log series carry route or kind, not app: they show the server.
    unfiltered = {title for title, expr in queries() if '$app"' not in expr}
    assert unfiltered == {
        "Decision latency",
        "Refused requests (503)/s",
        "Client errors (4xx)/s",
        "Log commit latency",
        "Log records pending",
    }


def steps(panel: dict[str, Any]) -> list[dict[str, Any]]:
    return list(panel["fieldConfig"]["defaults"]["thresholds"]["steps"])


def test_threshold_lines_follow_the_alert_thresholds() -> None:
    thresholds = AlertThresholds(mode_collapse_share=0.7, psi=0.3, fallback_rate=0.1)
    lines = {
        panel["title"]: [step["value"] for step in steps(panel)]
        for panel in dashboard(thresholds)["panels"]
        if panel["type"] != "row"
    }
    assert lines["Mode collapse: top action share"] == [None, 0.7]
    assert lines["Feature drift (PSI)"] == [None, 0.3]
    assert lines["Fallback share by arm"] == [None, 0.1]
    assert lines["Join lag"] == [None, thresholds.join_lag_seconds]
    assert lines["Decisions/s by arm"] == [None]


def promtool() -> str:
    return require_binary("promtool", package="prometheus")


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """Each target as a recording rule, variables as Grafana's "All" expands them."""
    rules = [
        {"record": f"dashboard:panel_{panel['id']}:{target['refId']}", "expr": target["expr"]}
        for panel in panels()
        for target in panel.get("targets", [])
    ]
    expanded = json.dumps({"groups": [{"name": "dashboard", "rules": rules}]})
    rules_file = tmp_path / "dashboard-rules.yml"  # JSON is YAML too
    rules_file.write_text(expanded.replace("$app", ".*").replace("$arm", ".*"))
    result = subprocess.run(
        [promtool(), "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
