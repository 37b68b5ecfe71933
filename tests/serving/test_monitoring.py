"""The server's monitoring: gauges from the decision monitor, outcomes from the log, and
series that stay bounded however many units there are."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from rlops.apps.defaults import pricing_join_config
from rlops.core.records import Outcome
from rlops.monitoring import OutcomeConfig, OutcomeMonitor
from rlops.registry.registry import Registry
from rlops.serving.monitoring import LogWatcher
from rlops.serving.server import create_app
from rlops.store import open_log
from tests.serving.helpers import register_mlp, server_config
from tests.serving.test_http import metric, server_of


def series_count(registry: CollectorRegistry) -> int:
    return sum(len(family.samples) for family in registry.collect())


def test_metrics_expose_the_monitors_gauges(tmp_path: Path) -> None:
    config = server_config(tmp_path, exploration={"kind": "epsilon"})
    register_mlp(config.registry, promote_to="production")
    with TestClient(create_app(config)) as client:
        for i in range(300):
            segment = ("bargain", "regular", "premium")[i % 3]
            body = {"unit_id": f"u{i}", "context": {"segment": segment}}
            assert client.post("/v1/decisions", json=body).status_code == 200
        shares = [
            metric(client, "rlops_action_share_max", app="pricing", arm="production", segment=s)
            for s in ("bargain", "regular", "premium")
        ]
        assert all(0.0 < share <= 1.0 for share in shares)
        kl = metric(client, "rlops_policy_kl", app="pricing", arm="production")
        assert kl > 0.0  # an MLP is not the rules
        explored = metric(client, "rlops_exploration_share", app="pricing", arm="production")
        assert 0.0 < explored < 0.5  # epsilon 0.1 by default, over 300 decisions
        total = sum(
            metric(
                client,
                "rlops_decisions_total",
                app="pricing",
                arm="production",
                policy_version=server_of(client).service.serving_version("production") or "",
                action=a,
                segment=s,
                fallback="false",
            )
            for a in server_of(client).service.catalog.ids
            for s in ("bargain", "regular", "premium")
        )
        assert total == 300


def test_series_stay_bounded_under_100000_units(tmp_path: Path) -> None:
    config = server_config(tmp_path)
    with TestClient(create_app(config)) as client:
        service = server_of(client).service
        registry = service.metrics.registry
        service.decide_and_log([f"warm-{i}" for i in range(300)], [{}] * 300)
        before = series_count(registry)
        for start in range(0, 100_000, 5_000):
            units = [f"unit-{start + i}" for i in range(5_000)]
            contexts = [{"segment": ("bargain", "regular", "premium")[i % 3]} for i in range(5_000)]
            service.decide_and_log(units, contexts)
        after = series_count(registry)
    assert after - before <= 40, (before, after)  # actions x segments, never units


def test_the_log_watcher_reports_rewards_statuses_and_join_lag(tmp_path: Path) -> None:
    log = open_log(tmp_path / "log.db")
    config = server_config(tmp_path)
    with TestClient(create_app(config)) as client:
        decided = server_of(client).service.decide_and_log([f"u{i}" for i in range(10)], [{}] * 10)
    now = time.time()
    join = pricing_join_config(window_days=0.0, sale_window_hours=0.0)
    outcomes = [
        Outcome(f"o{i}", d.decision.event_id, d.decision.ts, {"converted": 1.0, "margin_rate": 0.3})
        for i, d in enumerate(decided[:6])
    ]
    log.append_outcomes(outcomes)
    monitor = OutcomeMonitor(OutcomeConfig(reward_window_seconds=0.0))
    watcher = LogWatcher(config.log, "pricing", monitor)
    watcher._watermark = now - 3600  # as if it had started an hour ago
    lagging = log.oldest_unjoined_ts("pricing")
    assert lagging is not None and lagging <= decided[0].decision.ts
    while log.join_step(join, now=now + 1).work:
        pass
    assert watcher.poll(log) == 10
    version = decided[0].decision.policy_version
    count, total, *buckets = watcher.reward_totals[(version, "production")]
    assert count == 10 and total > 0
    assert buckets == sorted(buckets) and buckets[-1] <= count  # cumulative
    assert watcher.status_totals["joined"] == 6
    assert watcher.status_totals["default"] == 4  # no outcome in the window
    assert log.oldest_unjoined_ts("pricing") is None
    snapshot = monitor.snapshot()
    assert snapshot.rewards[(version, "production")].n == 10
    log.close()


class _Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Receiver.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def test_the_alert_loop_delivers_a_failed_load_and_records_it(tmp_path: Path) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/alerts"
    config = server_config(
        tmp_path,
        alerts={
            "interval": 3600,
            "webhook": url,
            "guardrail": {"RlopsPolicyLoadFailure": "record"},
        },
    )

    def damaged(seed: int) -> None:
        version = register_mlp(config.registry, seed=seed, promote_to="production")
        with Registry.open(config.registry) as registry:
            weights = registry.root / registry.version("pricing", version).path / "weights.npz"
        weights.write_bytes(weights.read_bytes()[:-10])  # truncated: fails verification

    damaged(0)
    try:
        with TestClient(create_app(config)) as client:
            server = server_of(client)
            assert server.alerts is not None and server.alerts.guardrail is not None
            assert server.alerts.tick() == []  # the first look: the baseline of the counter
            damaged(1)  # a second damaged version is pushed and fails to load
            server.service.follow(server.service.registry.require_alias("pricing", "production"))
            fired = server.alerts.tick()
            assert [a.name for a in fired] == ["RlopsPolicyLoadFailure"]
            (record,) = server.alerts.guardrail.actions
            assert record.alert == "RlopsPolicyLoadFailure" and record.action == "record"
            server.alerts.deliveries[0].flush(5.0)
    finally:
        receiver.shutdown()
        receiver.server_close()
    (body,) = _Receiver.bodies
    assert body["status"] == "firing"
    assert body["alerts"][0]["labels"]["alertname"] == "RlopsPolicyLoadFailure"
    assert body["alerts"][0]["labels"]["alias"] == "production"


def test_drift_and_coverage_against_the_training_reference(tmp_path: Path) -> None:
    from rlops.learn.simdata import pricing_logs
    from rlops.monitoring import Reference
    from rlops.sim.baselines import PricingRules
    from rlops.sim.logging import features_by_name
    from rlops.sim.pricing_core import PRICING_SCHEMA, PricingConfig

    data = pricing_logs(PricingRules(schema=PRICING_SCHEMA), PricingConfig(), 5)
    rows = [features_by_name(PRICING_SCHEMA, row) for row in data.features]
    path = Reference.from_logged(data).write(tmp_path / "ref")  # as trained on
    config = server_config(tmp_path, reference=str(path))
    with TestClient(create_app(config)) as client:
        service = server_of(client).service
        service.decide_and_log([f"u{i}" for i in range(600)], rows[:600])
        covered = metric(client, "rlops_state_coverage", app="pricing")
        calm = metric(client, "rlops_feature_psi", app="pricing", feature="price_ratio")
        shifted = [{**row, "price_ratio": 3.0} for row in rows[:600]]  # a repricing bug
        service.decide_and_log([f"v{i}" for i in range(600)], shifted)
        drift = metric(client, "rlops_feature_psi", app="pricing", feature="price_ratio")
        steady = metric(client, "rlops_feature_psi", app="pricing", feature="inventory_ratio")
        less = metric(client, "rlops_state_coverage", app="pricing")
    assert drift > 0.25 > max(steady, calm)
    assert covered > 0.9 and less < covered - 0.3, (covered, less)
