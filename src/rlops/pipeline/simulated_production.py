"""Production in a box: an application served, joined and retrained on a simulated clock.

Every part is the real one: the registry (rules bootstrapped as production), the
decision service with its experiment file, the group-commit writer into the transport
(the decision log, or Redis Streams with join workers moving entries into the log), the
delayed-reward join, and the retraining loop. Only time and customers are simulated:
:class:`~rlops.sim.traffic.PricingTraffic` brings one visitor per product per step (or
:class:`~rlops.sim.advisor_traffic.AdvisorTraffic` one recommendation per user per trading
day, or any other :class:`~rlops.sim.traffic.Traffic` given), and its outcomes are
delivered once the simulated clock reaches them.

Every ``review_every`` simulated seconds the rig delivers due outcomes, drains the
transport into the log and the join, lets the loop take its step, and has the service
adopt whatever the loop changed (experiment shares, aliases), in that order, so a run is
repeatable step for step. What each arm truly earned (reward and raw signals) is kept per
decision, for comparing the loop's estimates with the simulator's truth.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rlops.apps.defaults import join_configs
from rlops.apps.spaces import app_rules, app_spaces
from rlops.core.clock import ManualClock
from rlops.core.features import FeatureValue
from rlops.core.ids import SeededEventIds
from rlops.core.records import Decision
from rlops.exploration.explorer import ExplorationConfig
from rlops.pipeline.join_worker import JoinWorker
from rlops.pipeline.loop import RetrainingLoop
from rlops.pipeline.loop_config import LoopConfig
from rlops.pipeline.loop_state import LoopEvent
from rlops.pipeline.stream_worker import StreamJoinWorker
from rlops.policies.stack import SafetyConfig
from rlops.registry.registry import Registry
from rlops.serving.bootstrap import baseline_policy, ensure_production
from rlops.serving.experiments import Router
from rlops.serving.service import DecisionService, ServiceConfig
from rlops.serving.writer import GroupCommitWriter
from rlops.sim.advisor_core import AdvisorConfig
from rlops.sim.advisor_traffic import AdvisorTraffic
from rlops.sim.market_data import MarketSpec
from rlops.sim.pricing_core import PricingConfig
from rlops.sim.traffic import PricingTraffic, Traffic
from rlops.store import open_log
from rlops.stream.config import is_stream_url, parse_stream_url
from rlops.stream.transport import open_sink

START = 1_800_000_000.0
HOUR = 3600.0
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class RigConfig:
    """The market, the transport, how production explores and how far it may stray.

    ``products`` sizes the pricing market; ``users``, ``advisor_window_days`` and
    ``market`` the advisor's. ``safety`` is every arm's (the trust region to the rules).
    """

    loop: LoopConfig
    products: int = 40
    seed: int = 0
    transport: str = "log"
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    review_every: float = 6 * HOUR
    start: float = START
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    users: int = 200
    advisor_window_days: int = 30
    market: MarketSpec = field(default_factory=MarketSpec)


def default_traffic(config: RigConfig, clock: ManualClock) -> Traffic:
    """The application's own simulated population, on the rig's seed and clock."""
    if config.loop.app == "pricing":
        return PricingTraffic(PricingConfig(n_products=config.products), config.seed, clock=clock)
    advisor = AdvisorConfig(n_users=config.users, window_days=config.advisor_window_days)
    return AdvisorTraffic(advisor, config.market, config.seed, clock=clock)


@dataclass(frozen=True, slots=True)
class ArmTruth:
    """What decisions served by one (arm, version) truly earned, in simulated time order.

    ``signals`` holds each decision's raw simulated signals by name (same order).
    """

    ts: np.ndarray
    rewards: np.ndarray
    signals: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(self.rewards.mean()) if len(self.rewards) else float("nan")


@dataclass(slots=True)
class _Served:
    ts: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    signals: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


class SimulatedProduction:
    """The whole loop over a directory; :meth:`advance` runs simulated days."""

    def __init__(
        self,
        directory: Path,
        config: RigConfig,
        *,
        traffic: Callable[[ManualClock], Traffic] | None = None,
    ) -> None:
        self.config = config
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.clock = ManualClock(config.start)
        app = config.loop.app
        schema, catalog = app_spaces(app)
        self.registry = Registry.open(self.directory / "registry", clock=self.clock)
        self.baseline = baseline_policy(app, schema, catalog, app_rules(app))
        ensure_production(self.registry, self.baseline, config.loop.policy_name)
        log_url = f"sqlite:///{self.directory / 'log.db'}"
        self.log = open_log(log_url)
        self.writer = GroupCommitWriter(lambda: open_sink(config.transport, log_url)).start()
        self.loop = RetrainingLoop(
            config.loop,
            log=self.log,
            registry=self.registry,
            experiment=self.directory / "experiment.json",
            directory=self.directory / "loop",
            clock=self.clock,
        )
        self.router = Router(self.loop.router.experiment, path=self.directory / "experiment.json")
        self.service = DecisionService(
            ServiceConfig(app=app, policy_name=config.loop.policy_name, seed=config.seed,
                          exploration=config.exploration, safety=config.safety),
            registry=self.registry,
            router=self.router,
            writer=self.writer,
            baseline=self.baseline,
            clock=self.clock,
            event_ids=SeededEventIds(config.seed),
        )  # fmt: skip
        joins = [join_configs()[app]]
        self.joiner: JoinWorker | StreamJoinWorker
        if is_stream_url(config.transport):
            from rlops.stream.consumer import RedisConsumer

            consumer = RedisConsumer(parse_stream_url(config.transport), name="rig", block_ms=1)
            self.joiner = StreamJoinWorker(
                self.log, consumer, joins, clock=self.clock, batch_size=5000
            )
        else:
            self.joiner = JoinWorker(self.log, joins, clock=self.clock, batch_size=5000)
        self.traffic = (
            traffic(self.clock) if traffic is not None else default_traffic(config, self.clock)
        )
        self._truth: dict[tuple[str, str], _Served] = defaultdict(_Served)
        self._next_review = config.start + config.review_every
        self.decisions = 0

    # -- running -----------------------------------------------------------------------------

    def _decide(
        self, units: Sequence[str], contexts: Sequence[Mapping[str, FeatureValue]]
    ) -> list[Decision]:
        return [d.decision for d in self.service.decide_and_log(units, contexts)]

    def advance(self, days: float) -> list[LoopEvent]:
        """Serve simulated traffic for ``days``; the loop's events on the way."""
        end = self.clock.now() + days * DAY
        events: list[LoopEvent] = []
        while self.clock.now() < end:
            served = self.traffic.step(self._decide)
            self.decisions += len(served.decisions)
            for i, (decision, reward) in enumerate(
                zip(served.decisions, served.rewards, strict=True)
            ):
                kept = self._truth[(decision.arm, decision.policy_version)]
                kept.ts.append(decision.ts)
                kept.rewards.append(float(reward))
                for name, values in served.signals.items():
                    kept.signals[name].append(float(values[i]))
            if self.clock.now() >= self._next_review:
                self._next_review += self.config.review_every
                events += self.review()
        return events

    def review(self) -> list[LoopEvent]:
        """Deliver due outcomes, join, step the loop, and serve what it decided."""
        due = self.traffic.due()
        if due:
            self.service.record_outcomes(due)
        self.join()
        events = self.loop.step()
        self.router.refresh()
        self.service.experiment_changed()
        for record in self.registry.aliases(self.config.loop.policy_name):
            self.service.follow(record)
        return events

    def join(self) -> None:
        """Move everything published into the log and join what is due."""
        if isinstance(self.joiner, StreamJoinWorker):
            while self.joiner.cycle(block=False).entries:
                pass
        else:
            self.joiner.run_once()

    # -- reading ----------------------------------------------------------------------------

    def truth(self) -> dict[tuple[str, str], ArmTruth]:
        """Per (arm, version): every served decision's simulated reward and signals."""
        return {
            key: ArmTruth(
                np.asarray(kept.ts),
                np.asarray(kept.rewards),
                {name: np.asarray(values) for name, values in kept.signals.items()},
            )
            for key, kept in self._truth.items()
        }

    def production_version(self) -> str:
        return self.registry.require_alias(self.config.loop.policy_name, "production").version

    def close(self) -> None:
        self.service.close()
        self.writer.stop()
        consumer = getattr(self.joiner, "consumer", None)
        if consumer is not None:
            consumer.close()
        self.log.close()
        self.registry.close()

    def __enter__(self) -> SimulatedProduction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
