"""Assembling a server from its configuration: registry, log, features, experiment, tokens.

``rlops serve`` writes the configuration to an environment variable and starts uvicorn
with :func:`app_from_env` as the application factory, so every worker process builds
its own service (its own log connection, its own watchers) from the same settings.
On a fresh directory the registry is created, the application's rule engine is
registered and made ``production``, and the server answers at once.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from rlops.apps.defaults import join_configs
from rlops.apps.spaces import app_rules, app_spaces
from rlops.core.clock import RealClock
from rlops.core.errors import ValidationError
from rlops.exploration.explorer import ExplorationConfig
from rlops.monitoring import (
    DecisionMonitor,
    MonitorConfig,
    OutcomeConfig,
    OutcomeMonitor,
    Reference,
    WindowConfig,
    default_segment,
)
from rlops.monitoring.alert_rules import AlertThresholds, default_rules
from rlops.monitoring.alerts import AlertEvaluator, snapshot_of
from rlops.monitoring.delivery import AlertDelivery, DeliveryConfig
from rlops.monitoring.guardrail import Guardrail
from rlops.policies.stack import SafetyConfig
from rlops.registry.registry import Registry
from rlops.serving.app import Api, Limits
from rlops.serving.auth import Token, TokenBook
from rlops.serving.bootstrap import baseline_policy, ensure_production
from rlops.serving.experiments import Experiment, Router, load_experiment, single_arm
from rlops.serving.feature_store import open_feature_store
from rlops.serving.front import DecisionFront
from rlops.serving.metrics import ServerMetrics
from rlops.serving.monitoring import AlertLoop, LogWatcher, MonitorCollector
from rlops.serving.service import DecisionService, ServiceConfig
from rlops.serving.writer import GroupCommitWriter
from rlops.stream.transport import open_sink

ENV = "RLOPS_SERVE_CONFIG"
TOKENS_ENV = "RLOPS_TOKENS"
ADMIN_TOKEN_ENV = "RLOPS_ADMIN_TOKEN"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything a server process needs, as plain JSON-able values."""

    app: str = "pricing"
    policy_name: str = ""
    registry: str = "rlops-registry"
    registry_index: str | None = None
    log: str = "sqlite:///rlops-log.db"
    #: Where accepted decisions and outcomes go: ``log`` (appended to the log) or a Redis
    #: Streams URL (``redis://host:port/db?stream=rlops&partitions=8``), from which
    #: ``rlops join --transport`` workers write the log.
    transport: str = "log"
    features: str = "memory"
    experiment: str | None = None
    tokens: str | None = None
    seed: int = 0
    exploration: dict[str, Any] = field(default_factory=dict)
    safety: dict[str, Any] = field(default_factory=dict)
    body_bytes: int = 64 * 1024
    batch_body_bytes: int = 4 * 1024 * 1024
    max_pending: int = 50_000
    watch: bool = True
    #: Prometheus metrics and monitoring on the decision path (off only to measure their cost).
    metrics: bool = True
    #: The training data's reference (``reference.json`` from
    #: ``rlops.monitoring.Reference``) for feature drift and state coverage; none: off.
    reference: str | None = None
    #: Seconds between the outcome monitor's reads of the log.
    monitor_interval: float = 10.0
    #: In-process alerting (the embedded default's Prometheus): ``{"interval": 60,
    #: "webhook": url, "pagerduty": {"url", "routing_key"}, "guardrail": {alert: action},
    #: "thresholds": {...AlertThresholds}}``; empty: no alert loop.
    alerts: dict[str, Any] = field(default_factory=dict)
    #: The interpreter's thread switch interval in the server process (seconds). The
    #: writer thread needs the GIL back after each SQLite call; at Python's default
    #: 5 ms it waits behind the event loop for that long, several times per commit, and
    #: every acknowledgement waits with it.
    switch_interval: float = 0.0002

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(f"unknown server settings {unknown}", field=unknown[0])
        return cls(**data)


def token_book(config: ServerConfig) -> TokenBook:
    """Tokens from the file, else the RLOPS_TOKENS variable, else the embedded default
    (deciding and outcomes open) with the one-off admin token ``rlops serve`` printed."""
    if config.tokens:
        return TokenBook.from_file(Path(config.tokens))
    if os.environ.get(TOKENS_ENV):
        return TokenBook.from_env(os.environ[TOKENS_ENV])
    default = TokenBook.embedded_default()
    if os.environ.get(ADMIN_TOKEN_ENV):
        admin = Token.from_plaintext("admin", os.environ[ADMIN_TOKEN_ENV], ("admin",))
        return replace(default, tokens=(admin,))
    return default


def _experiment(config: ServerConfig) -> tuple[Experiment, Path | None]:
    if config.experiment is None:
        return single_arm(), None
    path = Path(config.experiment)
    return (load_experiment(path) if path.exists() else single_arm()), path


@dataclass(eq=False)
class Server:
    """A built server: its API (for the ASGI app) and the parts it owns."""

    api: Api
    service: DecisionService
    writer: GroupCommitWriter
    watcher: LogWatcher | None = None
    alerts: AlertLoop | None = None

    def close(self) -> None:
        if self.alerts is not None:
            self.alerts.stop()
        if self.watcher is not None:
            self.watcher.stop()
        self.service.close()
        self.writer.stop()
        if self.service.store is not None:
            self.service.store.close()
        self.service.registry.close()


def build(config: ServerConfig, *, metrics: ServerMetrics | None = None) -> Server:
    """Open everything and start the writer; the caller owns ``close()``."""
    schema, catalog = app_spaces(config.app)
    name = config.policy_name or config.app
    metrics = metrics if metrics is not None else ServerMetrics(enabled=config.metrics)
    registry = Registry.open(config.registry, config.registry_index)
    baseline = baseline_policy(name, schema, catalog, app_rules(config.app))
    ensure_production(registry, baseline, name)
    experiment, path = _experiment(config)
    router = Router(experiment, path=path)
    if path is not None and config.watch:
        router.follow()

    def on_commit(kind: str, rows: int, seconds: float) -> None:
        metrics.commit_seconds.labels(kind).observe(seconds)
        metrics.commit_rows.labels(kind).inc(rows)

    writer = GroupCommitWriter(
        lambda: open_sink(config.transport, config.log),
        max_pending=config.max_pending,
        on_commit=on_commit,
    ).start()
    store = open_feature_store(config.features, config.app)
    monitor = (
        DecisionMonitor(
            schema,
            Reference.read(config.reference) if config.reference else None,
            config=MonitorConfig(
                window=WindowConfig(bucket_seconds=60.0, buckets=5),
                segment=default_segment(config.app),
            ),
        )
        if config.metrics
        else None
    )
    service = DecisionService(
        ServiceConfig(
            app=config.app,
            policy_name=config.policy_name,
            seed=config.seed,
            exploration=ExplorationConfig.from_json(config.exploration),
            safety=SafetyConfig.from_json(config.safety),
        ),
        registry=registry,
        router=router,
        writer=writer,
        store=store,
        schema=schema,
        catalog=catalog,
        baseline=baseline,
        metrics=metrics,
        monitor=monitor,
    )
    watcher = None
    if monitor is not None:
        outcomes = OutcomeMonitor(
            OutcomeConfig(reward_window_seconds=join_configs()[config.app].window_seconds)
        )
        watcher = LogWatcher(config.log, config.app, outcomes, interval=config.monitor_interval)
        metrics.registry.register(
            MonitorCollector(config.app, monitor, outcomes, watcher, service.arm_versions)
        )
        watcher.start()
    alert_loop = _alert_loop(config, metrics, registry, service) if config.alerts else None
    if config.watch:
        service.watch()
        router.on_change = lambda experiment: service.experiment_changed()
    front = DecisionFront(service, writer)
    api = Api(
        service, front, token_book(config), Limits(config.body_bytes, config.batch_body_bytes)
    )
    return Server(api, service, writer, watcher, alert_loop)


def _alert_loop(
    config: ServerConfig, metrics: ServerMetrics, registry: Registry, service: DecisionService
) -> AlertLoop:
    settings = dict(config.alerts)
    thresholds = AlertThresholds(**settings.get("thresholds", {}))
    evaluator = AlertEvaluator(default_rules(thresholds), clock=RealClock())
    deliveries: list[AlertDelivery] = []
    if settings.get("webhook"):
        deliveries.append(AlertDelivery.webhook(DeliveryConfig(url=settings["webhook"])))
    if settings.get("pagerduty"):
        duty = settings["pagerduty"]
        deliveries.append(
            AlertDelivery.pagerduty(
                DeliveryConfig(url=duty["url"]), routing_key=duty["routing_key"]
            )
        )
    guardrail = None
    if settings.get("guardrail"):
        guardrail = Guardrail(
            registry,
            service.name,
            settings["guardrail"],
            alias_of=service.alias_of,
            app=config.app,
        )

    def follow_all() -> None:
        for record in registry.aliases(service.name):
            service.follow(record)

    return AlertLoop(
        lambda: evaluator.evaluate(snapshot_of(metrics.registry)),
        deliveries=deliveries,
        guardrail=guardrail,
        on_rollback=follow_all,
        interval=float(settings.get("interval", 60.0)),
    ).start()


def create_app(config: ServerConfig) -> Starlette:
    """The ASGI app; the server is built at startup and closed (log flushed) at shutdown."""
    holder: dict[str, Server] = {}
    server = build(config)
    holder["server"] = server

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            holder["server"].close()

    server.api._lifespan = lifespan
    app = server.api.app()
    app.state.server = server
    return app


def app_from_env() -> Starlette:
    """uvicorn's factory for ``rlops serve`` workers."""
    raw = os.environ.get(ENV)
    if not raw:
        raise ValidationError(f"{ENV} is not set; start the server with `rlops serve`", field=ENV)
    config = ServerConfig.from_json(json.loads(raw))
    sys.setswitchinterval(config.switch_interval)
    app = create_app(config)
    # What is loaded now (libraries, the policy) lives as long as the process: keep it
    # out of the collector's sight, and collect young objects less often, so the
    # decision path does not stop for a full collection of long-lived objects.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 1000)
    return app
