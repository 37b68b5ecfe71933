"""The server's Prometheus metrics, defined once, on a registry of their own.

Each service owns a ``CollectorRegistry`` (not the process-global one), so several
services in one process (tests, the demo) never collide. Labels are bounded: app, arm,
route, reason, feature name and kind come from configuration, never from requests, so
100,000 distinct unit ids add no series. Counters are updated once per micro-batch, not
once per request, to keep them off the hot path's per-request cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class _Off:
    """Stands in for every metric when metrics are off: the overhead benchmark's baseline."""

    def labels(self, *args: object) -> _Off:
        return self

    def inc(self, amount: float = 1.0) -> None:
        return None

    def observe(self, amount: float) -> None:
        return None

    def set(self, value: float) -> None:
        return None

    def clear(self) -> None:
        return None


@dataclass(eq=False)
class ServerMetrics:
    """``enabled=False`` keeps the interface and records nothing (for measuring the cost)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    enabled: bool = True

    def __post_init__(self) -> None:
        r = self.registry if self.enabled else CollectorRegistry()
        self.decisions = Counter(
            "rlops_decisions",
            "Decisions served (segment: the application's segment feature, else 'all').",
            ["app", "arm", "policy_version", "action", "segment", "fallback"],
            registry=r,
        )
        self.explored = Counter(
            "rlops_decisions_explored",
            "Decisions whose action differs from the policy's best.",
            ["app", "arm"],
            registry=r,
        )
        self.fallbacks = Counter(
            "rlops_fallbacks",
            "Decisions the baseline rules answered because the arm's policy could not.",
            ["app", "arm", "reason"],
            registry=r,
        )
        self.feature_defaults = Counter(
            "rlops_feature_defaults",
            "Features that fell back to their schema default (absent from store and request).",
            ["app", "feature"],
            registry=r,
        )
        self.store_unavailable = Counter(
            "rlops_feature_store_unavailable",
            "Decisions made without the feature store because it could not be reached.",
            ["app"],
            registry=r,
        )
        self.outcomes = Counter("rlops_outcomes_accepted", "Outcomes logged.", ["app"], registry=r)
        self.refused = Counter(
            "rlops_requests_refused",
            "Requests answered 503 because the log could not keep up or failed.",
            ["route", "reason"],
            registry=r,
        )
        self.client_errors = Counter(
            "rlops_client_errors", "Requests refused with a 4xx.", ["route", "code"], registry=r
        )
        self.latency = Histogram(
            "rlops_request_seconds",
            "Request handling time, from the body read to the response.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "rlops_log_commit_seconds",
            "Duration of one group commit to the log.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_rows = Counter(
            "rlops_log_committed", "Records committed to the log.", ["kind"], registry=r
        )
        self.pending = Gauge(
            "rlops_log_pending", "Records waiting for the group commit.", registry=r
        )
        self.load_failures = Counter(
            "rlops_policy_load_failures",
            "Policy versions that failed to load or verify (the old one kept serving).",
            ["app", "alias"],
            registry=r,
        )
        self.swaps = Counter(
            "rlops_policy_swaps",
            "Blue-green swaps of a serving policy.",
            ["app", "alias"],
            registry=r,
        )
        self.policy_info = Gauge(
            "rlops_policy_info",
            "1 for the version each arm serves (0 when it falls back to the baseline).",
            ["app", "arm", "alias", "version"],
            registry=r,
        )

        if not self.enabled:
            off = _Off()
            for name, value in list(vars(self).items()):
                if isinstance(value, Counter | Gauge | Histogram):
                    setattr(self, name, cast(Any, off))
