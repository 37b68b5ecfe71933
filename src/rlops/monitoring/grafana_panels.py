"""The rlops Grafana dashboard's content: what each panel shows, grouped in rows.

Declarations only (:class:`Panel` records and the PromQL helpers); how they are laid out
and rendered into Grafana's JSON model is :mod:`rlops.monitoring.grafana_dashboard`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rlops.monitoring.alert_rules import AlertThresholds

Json = dict[str, Any]
PanelKind = Literal["timeseries", "bargauge", "table"]
Stacking = Literal["none", "normal", "percent"]

UID = "rlops"
SCHEMA_VERSION = 39
GRID_WIDTH = 24
PANEL_HEIGHT = 8
WINDOW = "5m"  # the default fallback-rate alert window, so the panel reads as the alert
DATASOURCE: Json = {"type": "prometheus", "uid": "${datasource}"}
APP = 'app=~"$app"'
ARM = 'arm=~"$arm"'


@dataclass(frozen=True)
class Query:
    """One PromQL target; ``instant`` for panels that show the latest value only."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    """What a panel shows; where it goes is decided by :func:`dashboard`.

    ``unit`` is a Grafana unit id (``s``, ``ops``, ``percentunit``: a 0..1 share).
    ``threshold`` draws a red line (timeseries) or colours the bar (bar gauge) from there.
    ``dashed`` is a regex over series names drawn with a dashed line.
    """

    title: str
    description: str
    queries: tuple[Query, ...]
    kind: PanelKind = "timeseries"
    unit: str = "short"
    width: int = 12
    stacking: Stacking = "none"
    bars: bool = False
    threshold: float | None = None
    max: float | None = None
    dashed: str | None = None


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


def _series(name: str, *matchers: str) -> str:
    return f"{name}{{{', '.join(matchers)}}}" if matchers else name


def _rate(name: str, *matchers: str) -> str:
    return f"rate({_series(name, *matchers)}[{WINDOW}])"


def _quantiles(name: str, by: str, *matchers: str) -> tuple[Query, ...]:
    """p50 and p99 of a histogram, summed over everything but ``by`` and ``le``."""
    keep = f"{by}, le" if by else "le"
    legend = f"{{{{{by}}}}} " if by else ""
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by ({keep}) ({_rate(name + '_bucket', *matchers)}))",
            f"{legend}p{round(q * 100)}",
        )
        for q in (0.5, 0.99)
    )


def _ratio(numerator: str, denominator: str, by: str) -> str:
    """``sum by (by) (numerator) / sum by (by) (denominator)``."""
    return f"sum by ({by}) ({numerator}) / sum by ({by}) ({denominator})"


def _increase(name: str) -> str:
    """Increments of an app-labelled counter per window, by app and alias."""
    return f"sum by (app, alias) (increase({_series(name, APP)}[{WINDOW}]))"


def rows(thresholds: AlertThresholds) -> tuple[Row, ...]:
    """The dashboard's content, top to bottom."""
    t = thresholds
    decided = _rate("rlops_decisions_total", APP, ARM)
    explored = _rate("rlops_decisions_explored_total", APP, ARM)
    fallbacks = _rate("rlops_fallbacks_total", APP, ARM)
    by_segment = f"sum by (segment, action) ({decided})"
    by_arm = "{{app}} {{arm}}"
    return (
        Row(
            "Decisions",
            (
                Panel(
                    "Decisions/s by arm",
                    "Decisions served per second, per experiment arm.",
                    (Query(f"sum by (app, arm) ({decided})", by_arm),),
                    unit="ops",
                ),
                Panel(
                    "Decisions/s by policy version",
                    "Which policy versions answer; the baseline's version appears on fallback.",
                    (
                        Query(
                            f"sum by (app, arm, policy_version) ({decided})",
                            "{{app}} {{arm}} {{policy_version}}",
                        ),
                    ),
                    unit="ops",
                ),
                Panel(
                    "Action distribution by segment",
                    "Decisions per (segment, action), stacked to 100% of the decisions shown.",
                    (Query(by_segment, "{{segment}} {{action}}"),),
                    unit="ops",
                    stacking="percent",
                ),
                Panel(
                    "Action share within segment (now)",
                    f"Each action's share of its segment's decisions over the last {WINDOW}.",
                    (
                        Query(
                            f"{by_segment} / on (segment) group_left sum by (segment) ({decided})",
                            "{{segment}} {{action}}",
                            instant=True,
                        ),
                    ),
                    kind="bargauge",
                    unit="percentunit",
                    threshold=t.mode_collapse_share,
                    max=1.0,
                ),
                Panel(
                    "Exploration share by arm",
                    "Share of decisions whose action differs from the policy's best.",
                    (Query(_ratio(explored, decided, "app, arm"), by_arm),),
                    unit="percentunit",
                    width=8,
                ),
                Panel(
                    "Fallback share by arm",
                    "Share of decisions the baseline rules answered; the line is the alert's.",
                    (Query(_ratio(fallbacks, decided, "app, arm"), by_arm),),
                    unit="percentunit",
                    width=8,
                    threshold=t.fallback_rate,
                ),
                Panel(
                    "Fallbacks/s by reason",
                    "Why the arm's policy could not answer.",
                    (
                        Query(
                            f"sum by (app, arm, reason) ({fallbacks})", f"{by_arm} {{{{reason}}}}"
                        ),
                    ),
                    unit="ops",
                    width=8,
                    stacking="normal",
                ),
            ),
        ),
        Row(
            "Server (all apps)",
            (
                Panel(
                    "Decision latency",
                    "Request handling time of /v1/decisions, body read to response.",
                    _quantiles("rlops_request_seconds", "", 'route="decisions"'),
                    unit="s",
                    width=8,
                ),
                Panel(
                    "Refused requests (503)/s",
                    "Requests refused because the log could not keep up or failed.",
                    (
                        Query(
                            f"sum by (route, reason) ({_rate('rlops_requests_refused_total')})",
                            "{{route}} {{reason}}",
                        ),
                    ),
                    unit="reqps",
                    width=8,
                    stacking="normal",
                ),
                Panel(
                    "Client errors (4xx)/s",
                    "Requests refused as invalid, by route and error code.",
                    (
                        Query(
                            f"sum by (route, code) ({_rate('rlops_client_errors_total')})",
                            "{{route}} {{code}}",
                        ),
                    ),
                    unit="reqps",
                    width=8,
                    stacking="normal",
                ),
                Panel(
                    "Log commit latency",
                    "Duration of one group commit to the decision and outcome log.",
                    _quantiles("rlops_log_commit_seconds", "kind"),
                    unit="s",
                ),
                Panel(
                    "Log records pending",
                    "Records waiting for the next group commit, per server.",
                    (Query("rlops_log_pending", "{{instance}}"),),
                ),
            ),
        ),
        Row(
            "Policies",
            (
                Panel(
                    "Serving versions",
                    "The version each arm serves: policy, or the baseline it fell back to.",
                    (
                        Query(
                            "max by (app, arm, alias, version)"
                            f" ({_series('rlops_policy_info', APP, ARM)})",
                            instant=True,
                        ),
                    ),
                    kind="table",
                ),
                Panel(
                    "Policy swaps",
                    f"Blue-green swaps of a serving policy, per {WINDOW}.",
                    (Query(_increase("rlops_policy_swaps_total"), "{{app}} {{alias}}"),),
                    width=6,
                    bars=True,
                ),
                Panel(
                    "Policy load failures",
                    f"Versions that failed to load or verify (the old kept serving), per {WINDOW}.",
                    (Query(_increase("rlops_policy_load_failures_total"), "{{app}} {{alias}}"),),
                    width=6,
                    bars=True,
                ),
            ),
        ),
        Row(
            "Policy behaviour",
            (
                Panel(
                    "Mode collapse: top action share",
                    "The most chosen action's share of recent decisions; the line is the alert's.",
                    (
                        Query(
                            "max by (app, arm, segment)"
                            f" ({_series('rlops_action_share_max', APP, ARM)})",
                            f"{by_arm} {{{{segment}}}}",
                        ),
                    ),
                    unit="percentunit",
                    width=8,
                    threshold=t.mode_collapse_share,
                    max=1.0,
                ),
                Panel(
                    "Policy KL divergence",
                    "Mean KL(served || baseline) per decision, in nats: the move from the rules.",
                    (Query(f"max by (app, arm) ({_series('rlops_policy_kl', APP, ARM)})", by_arm),),
                    width=8,
                ),
                Panel(
                    "State coverage",
                    "How recent requests cover the training snapshot's state grid (a share).",
                    (Query(f"max by (app) ({_series('rlops_state_coverage', APP)})", "{{app}}"),),
                    unit="percentunit",
                    width=8,
                    max=1.0,
                ),
            ),
        ),
        Row(
            "Features",
            (
                Panel(
                    "Feature drift (PSI)",
                    "Population stability index against the training snapshot; the alert's line.",
                    (
                        Query(
                            f"max by (app, feature) ({_series('rlops_feature_psi', APP)})",
                            "{{app}} {{feature}}",
                        ),
                    ),
                    width=8,
                    threshold=t.psi,
                ),
                Panel(
                    "Feature defaults/s",
                    "Features that fell back to their schema default (not in store or request).",
                    (
                        Query(
                            f"sum by (app, feature) ({_rate('rlops_feature_defaults_total', APP)})",
                            "{{app}} {{feature}}",
                        ),
                    ),
                    unit="ops",
                    width=8,
                ),
                Panel(
                    "Feature store unavailable/s",
                    "Decisions made without the feature store because it could not be reached.",
                    (
                        Query(
                            f"sum by (app) ({_rate('rlops_feature_store_unavailable_total', APP)})",
                            "{{app}}",
                        ),
                    ),
                    unit="ops",
                    width=8,
                ),
            ),
        ),
        Row(
            "Outcomes and reward",
            (
                Panel(
                    "Outcomes/s by status",
                    "Outcomes joined to their decision, late, defaulted, or quarantined.",
                    (
                        Query(
                            f"sum by (app, status) ({_rate('rlops_outcomes_total', APP)})",
                            "{{app}} {{status}}",
                        ),
                    ),
                    unit="ops",
                    stacking="normal",
                ),
                Panel(
                    "Join lag",
                    "Age of the oldest decision waiting for its outcome; the line is the alert's.",
                    (Query(f"max by (app) ({_series('rlops_join_lag_seconds', APP)})", "{{app}}"),),
                    unit="s",
                    threshold=t.join_lag_seconds,
                ),
                Panel(
                    "Mean reward: current vs previous version",
                    "Mean joined reward of the serving version (solid) and the previous (dashed).",
                    (
                        Query(
                            f"max by (app, arm, role) ({_series('rlops_reward_mean', APP, ARM)})",
                            f"{by_arm} {{{{role}}}}",
                        ),
                    ),
                    dashed=".* previous$",
                ),
                Panel(
                    "Mean reward by policy version",
                    f"Mean reward of the outcomes joined over the last {WINDOW}.",
                    (
                        Query(
                            _ratio(
                                _rate("rlops_reward_sum", APP, ARM),
                                _rate("rlops_reward_count", APP, ARM),
                                "app, arm, policy_version",
                            ),
                            f"{by_arm} {{{{policy_version}}}}",
                        ),
                    ),
                ),
            ),
        ),
    )
