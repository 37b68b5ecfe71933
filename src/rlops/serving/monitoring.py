"""The server's monitors, exported as Prometheus gauges, and the log watcher behind them.

Decisions are observed as they are made (:meth:`DecisionService.decide` feeds a
:class:`~rlops.monitoring.monitor.DecisionMonitor` once per micro-batch). Outcomes arrive
through the log, where the join workers write examples; a :class:`LogWatcher` thread
reads what was joined since its last look and feeds an
:class:`~rlops.monitoring.monitor.OutcomeMonitor`, counts outcomes by status and measures
the join lag. :class:`MonitorCollector` turns both snapshots into gauges at scrape time,
so the decision path pays only for counting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from rlops.core.clock import Clock, RealClock
from rlops.monitoring import DecisionMonitor, OutcomeMonitor
from rlops.store import open_log

log = logging.getLogger(__name__)

#: Upper bounds of the reward histogram: rewards of both reference applications are
#: mostly within [-1, 1] per decision, with a tail (a clearance bonus, a big return).
REWARD_BUCKETS = (-1.0, -0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

#: ``arm -> (current version, previous version)`` of what each arm serves.
Roles = Callable[[], dict[str, tuple[str | None, str | None]]]


class Periodic:
    """Calls ``tick`` every ``interval`` seconds in a daemon thread until stopped. An
    exception is logged and counted, and the next round tries again: a monitor that dies
    silently is worse than a noisy one."""

    def __init__(self, name: str, interval: float, tick: Callable[[], object]) -> None:
        self.interval = interval
        self.errors = 0
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._tick()
            except Exception:
                self.errors += 1
                log.exception("%s failed", self._thread.name)


class LogWatcher:
    """Reads newly joined examples and the log's outcome counts every ``interval`` s."""

    def __init__(
        self,
        log_url: str,
        app: str,
        outcomes: OutcomeMonitor,
        *,
        interval: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.log_url = log_url
        self.app = app
        self.outcomes = outcomes
        self.interval = interval
        self.clock: Clock = clock if clock is not None else RealClock()
        self.status_totals: dict[str, int] = {}
        #: ``(policy_version, arm) -> [count, sum, *cumulative bucket counts]`` of
        #: first-revision rewards seen so far (bounded by versions and arms, not units).
        self.reward_totals: dict[tuple[str, str], list[float]] = {}
        self._watermark = self.clock.now()
        self._log: Any = None  # opened in the watcher's thread, on its first look
        self._periodic = Periodic("log-watcher", interval, self._look)

    @property
    def errors(self) -> int:
        return self._periodic.errors

    def start(self) -> LogWatcher:
        self._periodic.start()
        return self

    def stop(self) -> None:
        self._periodic.stop()
        if self._log is not None:
            self._log.close()

    def poll(self, decision_log: Any) -> int:
        """One look: examples joined since the last one, outcome counts, join lag."""
        now = self.clock.now()
        horizon = self.outcomes.config.reward_window_seconds + 2 * self.interval
        recent = decision_log.examples(
            app=self.app, current_only=False, start=self._watermark - horizon
        )
        fresh = [e for e in recent if e.joined_at > self._watermark]
        if fresh:
            self.outcomes.observe(fresh, now)
            self._watermark = max(e.joined_at for e in fresh)
            # a new dict, swapped in whole: a scrape iterating the old one is never torn
            updated = {key: list(values) for key, values in self.reward_totals.items()}
            for e in fresh:
                if e.revision == 0:
                    totals = updated.setdefault(
                        (e.policy_version, e.arm), [0.0] * (2 + len(REWARD_BUCKETS))
                    )
                    totals[0] += 1
                    totals[1] += e.reward
                    for i, bound in enumerate(REWARD_BUCKETS):
                        if e.reward <= bound:
                            totals[2 + i] += 1
            self.reward_totals = updated
        stats = decision_log.stats()
        statuses = {str(k): int(v) for k, v in stats.outcomes.items()}
        # examples whose window closed with no outcome, scored with the default reward
        statuses["default"] = int(stats.examples_defaulted)
        self.status_totals = statuses
        oldest = decision_log.oldest_unjoined_ts(self.app)
        self.outcomes.observe_pending([] if oldest is None else [oldest], now)
        return len(fresh)

    def _look(self) -> None:
        if self._log is None:
            self._log = open_log(self.log_url)
        self.poll(self._log)


class MonitorCollector(Collector):
    """Gauges from the monitors' snapshots, computed when Prometheus scrapes."""

    def __init__(
        self,
        app: str,
        decisions: DecisionMonitor,
        outcomes: OutcomeMonitor | None = None,
        watcher: LogWatcher | None = None,
        roles: Roles | None = None,
        *,
        min_count: int = 50,
    ) -> None:
        """``min_count``: the fewest decisions of an (arm, segment) in the window for its
        top share to be exported; below it the share is noise (three of three is 100%)
        and would page someone at night for a quiet segment."""
        self.min_count = min_count
        self.app = app
        self.decisions = decisions
        self.outcomes = outcomes
        self.watcher = watcher
        self.roles = roles

    def describe(self) -> list[Any]:
        return []  # computed at collect time; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        app = self.app
        snapshot = self.decisions.snapshot()
        share = GaugeMetricFamily(
            "rlops_action_share_max",
            "Largest single action's share of the window's decisions, by arm and segment.",
            labels=["app", "arm", "segment"],
        )
        for (arm, segment), top in snapshot.top_shares.items():
            if top.n >= self.min_count:
                share.add_metric([app, arm, segment], top.share)
        yield share
        kl = GaugeMetricFamily(
            "rlops_policy_kl",
            "Mean KL divergence of the served distribution from the baseline rules.",
            labels=["app", "arm"],
        )
        explored = GaugeMetricFamily(
            "rlops_exploration_share",
            "Share of the window's decisions whose action was explored.",
            labels=["app", "arm"],
        )
        for arm, summary in snapshot.arms.items():
            explored.add_metric([app, arm], summary.explored_share)
            if summary.kl is not None:
                kl.add_metric([app, arm], summary.kl.mean)
        yield kl
        yield explored
        psi = GaugeMetricFamily(
            "rlops_feature_psi",
            "Population stability index of each feature against the training snapshot.",
            labels=["app", "feature"],
        )
        for feature, value in snapshot.psi.items():
            psi.add_metric([app, feature], value)
        yield psi
        coverage = GaugeMetricFamily(
            "rlops_state_coverage",
            "Share of the window's decisions in feature cells the training snapshot occupied.",
            labels=["app"],
        )
        if snapshot.coverage is not None:
            coverage.add_metric([app], 1.0 - snapshot.coverage.unseen_share)
        yield coverage
        if self.outcomes is not None:
            yield from self._outcomes()

    def _outcomes(self) -> Iterator[Any]:
        assert self.outcomes is not None
        app = self.app
        snapshot = self.outcomes.snapshot()
        reward = GaugeMetricFamily(
            "rlops_reward_mean",
            "Mean joined reward in the window of the version an arm serves now (current) "
            "and of the one before it (previous).",
            labels=["app", "arm", "role"],
        )
        by_version = GaugeMetricFamily(
            "rlops_reward_window_mean",
            "Mean joined reward in the window by policy version and arm.",
            labels=["app", "policy_version", "arm"],
        )
        for (served, arm), stats in snapshot.rewards.items():
            by_version.add_metric([app, served, arm], stats.mean)
        roles = self.roles() if self.roles is not None else {}
        for arm, (current, previous) in roles.items():
            for role, version in (("current", current), ("previous", previous)):
                found = snapshot.rewards.get((version, arm)) if version else None
                if found is not None and found.n > 0:
                    reward.add_metric([app, arm, role], found.mean)
        yield reward
        yield by_version
        lag = GaugeMetricFamily(
            "rlops_join_lag_seconds",
            "Age past its reward window of the oldest decision not yet joined.",
            labels=["app"],
        )
        if snapshot.join_lag is not None:
            lag.add_metric([app], snapshot.join_lag)
        yield lag
        if self.watcher is not None:
            rewards = HistogramMetricFamily(
                "rlops_reward",
                "Joined rewards (first revision) by policy version and arm.",
                labels=["app", "policy_version", "arm"],
            )
            for (version, arm), totals in sorted(self.watcher.reward_totals.items()):
                buckets = [(f"{b:g}", n) for b, n in zip(REWARD_BUCKETS, totals[2:], strict=True)]
                rewards.add_metric(
                    [app, version, arm], [*buckets, ("+Inf", totals[0])], sum_value=totals[1]
                )
            yield rewards
            statuses = CounterMetricFamily(
                "rlops_outcomes",
                "Outcomes in the log by status (joined, late, new, quarantined).",
                labels=["app", "status"],
            )
            for status, count in self.watcher.status_totals.items():
                statuses.add_metric([app, status], count)
            yield statuses


class AlertLoop:
    """The embedded default's Prometheus: evaluates the alert rules on this server's own
    metrics every ``interval`` seconds, sends transitions to the configured receivers and
    hands them to the guardrail, which may roll an alias back (the server then follows)."""

    def __init__(
        self,
        evaluate: Callable[[], list[Any]],
        *,
        deliveries: list[Any],
        guardrail: Any | None,
        on_rollback: Callable[[], None],
        interval: float = 60.0,
    ) -> None:
        self._evaluate = evaluate
        self.deliveries = deliveries
        self.guardrail = guardrail
        self._on_rollback = on_rollback
        self.transitions: list[Any] = []
        self._periodic = Periodic("alert-loop", interval, self.tick)

    @property
    def errors(self) -> int:
        return self._periodic.errors

    def start(self) -> AlertLoop:
        self._periodic.start()
        return self

    def stop(self) -> None:
        self._periodic.stop()
        for delivery in self.deliveries:
            delivery.close()

    def tick(self) -> list[Any]:
        alerts = self._evaluate()
        if alerts:
            self.transitions.extend(alerts)
            del self.transitions[:-1000]  # the recent ones, for /v1/alerts
            for delivery in self.deliveries:
                delivery.notify(alerts)
            if self.guardrail is not None:
                records = self.guardrail.handle(alerts)
                if any(r.to_version for r in records):
                    self._on_rollback()
        return alerts
