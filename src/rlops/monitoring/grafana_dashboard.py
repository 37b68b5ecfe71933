"""The rlops Grafana dashboard, generated so the JSON model is never edited by hand.

:func:`dashboard` returns a Grafana JSON model (schema 39) over the series the server and
the monitoring jobs export. Panels are declared as :class:`Panel` records grouped in
:class:`Row` s; the layout (ids, ``gridPos``) is computed, packing each row's panels left
to right on Grafana's 24-column grid. Threshold lines come from
:class:`~rlops.monitoring.alert_rules.AlertThresholds`, so a panel's red line is where the
matching alert fires.

Every query goes through the ``${datasource}`` variable and is filtered by ``$app`` (and
``$arm`` where the series carries an arm). The request, 503, 4xx and log-commit series are
labelled by route or kind, not by app, so those panels show the whole server.

The committed ``grafana/rlops-dashboard.json`` is ``json.dumps(dashboard(), indent=2)``
plus a newline; a test holds them equal. Regenerate it from the repository root::

    python -m rlops.monitoring.grafana_dashboard \
        > src/rlops/monitoring/grafana/rlops-dashboard.json
"""

from __future__ import annotations

import json

from rlops.monitoring.alert_rules import AlertThresholds
from rlops.monitoring.grafana_panels import (
    APP,
    DATASOURCE,
    GRID_WIDTH,
    PANEL_HEIGHT,
    SCHEMA_VERSION,
    UID,
    Json,
    Panel,
    Query,
    Row,
    rows,
)


def _thresholds(value: float | None) -> Json:
    steps: list[Json] = [{"color": "green", "value": None}]
    if value is not None:
        steps.append({"color": "red", "value": value})
    return {"mode": "absolute", "steps": steps}


def _targets(queries: tuple[Query, ...], *, table: bool) -> list[Json]:
    return [
        {
            "datasource": DATASOURCE,
            "expr": query.expr,
            "format": "table" if table else "time_series",
            "instant": query.instant,
            "legendFormat": query.legend or "__auto",
            "range": not query.instant,
            "refId": chr(ord("A") + index),
        }
        for index, query in enumerate(queries)
    ]


def _defaults(panel: Panel) -> Json:
    defaults: Json = {"thresholds": _thresholds(panel.threshold), "unit": panel.unit}
    if panel.kind != "table":
        defaults["min"] = 0
    if panel.max is not None:
        defaults["max"] = panel.max
    if panel.kind == "timeseries":
        defaults["color"] = {"mode": "palette-classic"}
        defaults["custom"] = {
            "drawStyle": "bars" if panel.bars else "line",
            "fillOpacity": 80 if panel.bars else (60 if panel.stacking != "none" else 10),
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": panel.stacking},
            "thresholdsStyle": {"mode": "off" if panel.threshold is None else "line"},
        }
    return defaults


def _overrides(panel: Panel) -> list[Json]:
    if panel.kind == "table":
        # The gauge is 1 for the policy's version, 0 for the baseline it fell back to.
        states = {"1": ("policy", "green"), "0": ("baseline", "orange")}
        mappings = {
            "type": "value",
            "options": {
                value: {"color": color, "index": index, "text": text}
                for index, (value, (text, color)) in enumerate(states.items())
            },
        }
        return [
            {
                "matcher": {"id": "byName", "options": "Value"},
                "properties": [
                    {"id": "displayName", "value": "serving"},
                    {"id": "mappings", "value": [mappings]},
                    {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                ],
            }
        ]
    if panel.dashed is not None:
        dash = {"dash": [10, 10], "fill": "dash"}
        return [
            {
                "matcher": {"id": "byRegexp", "options": panel.dashed},
                "properties": [{"id": "custom.lineStyle", "value": dash}],
            }
        ]
    return []


def _options(panel: Panel) -> Json:
    if panel.kind == "bargauge":
        return {
            "displayMode": "gradient",
            "orientation": "horizontal",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showUnfilled": True,
        }
    if panel.kind == "table":
        return {"cellHeight": "sm", "showHeader": True, "sortBy": [{"displayName": "arm"}]}
    return {
        "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def _panel(panel: Panel, *, panel_id: int, x: int, y: int) -> Json:
    rendered: Json = {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": {"defaults": _defaults(panel), "overrides": _overrides(panel)},
        "gridPos": {"h": PANEL_HEIGHT, "w": panel.width, "x": x, "y": y},
        "id": panel_id,
        "options": _options(panel),
        "targets": _targets(panel.queries, table=panel.kind == "table"),
        "title": panel.title,
        "type": panel.kind,
    }
    if panel.kind == "table":
        rendered["transformations"] = [
            {"id": "organize", "options": {"excludeByName": {"Time": True}}}
        ]
    return rendered


def _layout(content: tuple[Row, ...]) -> list[Json]:
    """Rows one above another; each row's panels packed left to right, wrapping at 24."""
    panels: list[Json] = []
    y = 0
    for row in content:
        panels.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "id": len(panels) + 1,
                "panels": [],
                "title": row.title,
                "type": "row",
            }
        )
        y += 1
        x = 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x, y = 0, y + PANEL_HEIGHT
            panels.append(_panel(panel, panel_id=len(panels) + 1, x=x, y=y))
            x += panel.width
        y += PANEL_HEIGHT
    return panels


def _query_variable(name: str, label: str, query: str) -> Json:
    return {
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": DATASOURCE,
        "definition": query,
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor"},
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


def _variables() -> list[Json]:
    return [
        {
            "current": {},
            "hide": 0,
            "includeAll": False,
            "label": "Data source",
            "multi": False,
            "name": "datasource",
            "options": [],
            "query": "prometheus",
            "refresh": 1,
            "regex": "",
            "skipUrlSync": False,
            "type": "datasource",
        },
        _query_variable("app", "App", "label_values(rlops_decisions_total, app)"),
        _query_variable("arm", "Arm", f"label_values(rlops_decisions_total{{{APP}}}, arm)"),
    ]


def _annotations() -> list[Json]:
    return [
        {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        },
        {
            "datasource": DATASOURCE,
            "enable": True,
            "expr": 'ALERTS{alertstate="firing"}',
            "hide": False,
            "iconColor": "red",
            "name": "Firing alerts",
            "step": "1m",
            "tagKeys": "alertname,severity",
            "textFormat": "{{app}} {{arm}}",
            "titleFormat": "{{alertname}}",
            "useValueForTime": False,
        },
    ]


def dashboard(thresholds: AlertThresholds | None = None) -> Json:
    """The Grafana JSON model, ready for file provisioning (``id`` null, fixed ``uid``)."""
    content = rows(thresholds if thresholds is not None else AlertThresholds())
    return {
        "annotations": {"list": _annotations()},
        "description": "rlops decision serving: traffic, latency, policies, drift, reward.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": _layout(content),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["rlops"],
        "templating": {"list": _variables()},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": "rlops",
        "uid": UID,
        "version": 1,
        "weekStart": "",
    }


if __name__ == "__main__":
    print(json.dumps(dashboard(), indent=2))
