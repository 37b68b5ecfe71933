"""Online bandit updates from the join: fold each joined example in, publish at a cadence.

A join worker calls :meth:`OnlineBanditUpdater.poll` after each pass
(``JoinWorker(..., hooks=[updater.poll])``). The updater holds the ridge state of the
bandit at its alias and reads the examples joined since its cursor
(:mod:`rlops.pipeline.online_cursor`); it folds them in with the learner's rank-one
updates (never a refit) and, every ``every_examples`` examples or ``every_seconds``,
publishes the state as a new version: ``parent_version`` the one it grew from, the
cursor in its training config, registered and promoted to the alias with a reason.

Late revisions replace, they do not add. A late outcome re-emits a decision's example
as revision + 1; counting it as a second event would weigh that decision twice and keep
the stale reward. The updater instead replaces the reward it folded before:
``b += w (r_new - r_old) x`` (:meth:`~rlops.learn.bandits.BanditLearner.revise`), which
leaves the state exactly as if the revised reward had come first. The revision it
replaces is the latest one the cursor has passed (anything joined before the chain's
``origin`` is taken to be in the starting model); a revision whose earlier ones were
never folded (all joined since the last read) is folded as a new event. This needs
``gamma_forget == 1``, which the updater checks when it starts.

The trust region is the gate's KL check: mean ``KL(candidate || baseline rules floored at
baseline_floor)`` over the last ``trust_contexts`` contexts folded in. A state outside
the bound is not published; the report says why, ``refusals`` counts it, a warning is
logged, and learning goes on. Nothing outside the bound is ever published. Promotion is
forced past the registry's gate (the KL check is this path's gate) and conditional on
the alias revision the updater last saw: if someone else moved the alias (a rollback),
the updater publishes nothing and restarts from the alias's version.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from rlops.apps.spaces import app_rules, app_spaces
from rlops.core.clock import Clock, RealClock
from rlops.core.errors import ConflictError, ValidationError
from rlops.core.records import Example
from rlops.learn.bandits import BanditConfig, BanditLearner
from rlops.pipeline.online_config import OnlineUpdateConfig
from rlops.pipeline.online_cursor import JoinCursor
from rlops.policies.artifact import LoadedPolicy
from rlops.policies.bandit import BanditPolicy
from rlops.registry.gate_record import KlCheck
from rlops.registry.gates import kl_check
from rlops.registry.registry import Registry
from rlops.serving.bootstrap import baseline_policy
from rlops.store.log import DecisionLog

log = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]
_ID_CHUNK = 500  # event ids per history read (SQLite caps bound parameters)

__all__ = ["OnlineBanditUpdater", "OnlineUpdateConfig", "PollReport"]


@dataclass(frozen=True, slots=True)
class PollReport:
    """What one poll did: examples folded in as new events, revisions that replaced a
    reward, skipped (an action outside the catalog); ``published`` the new version, or
    ``refused`` why a due publication did not happen (with ``kl`` when measured)."""

    folded: int = 0
    revised: int = 0
    skipped: int = 0
    pending: int = 0
    published: str | None = None
    refused: str | None = None
    kl: KlCheck | None = None


def bandit_config_of(loaded: LoadedPolicy) -> BanditConfig:
    """The learner settings a bandit version was trained with.

    From its training config when a bandit learner wrote it; otherwise what the snapshot
    itself holds (form, rule, prior) with the remaining settings at their defaults.
    """
    policy = loaded.policy
    assert isinstance(policy, BanditPolicy)
    recorded = loaded.manifest.training_config
    if recorded.get("learner") == "bandit":
        known = {f.name for f in fields(BanditConfig)}
        return BanditConfig.from_json({k: v for k, v in recorded.items() if k in known})
    rule = policy.rule
    return BanditConfig(
        rule=rule.kind,
        form=policy.form,
        alpha=rule.alpha,
        epsilon=rule.epsilon,
        squarecb_gamma=rule.squarecb_gamma,
        thompson_scale=rule.thompson_scale,
        thompson_samples=rule.thompson_samples,
        ridge_lambda=policy.ridge_lambda,
        action_map=policy.action_map,
    )


class OnlineBanditUpdater:
    """The bandit at ``config.alias`` of ``config.name``, learning from the join."""

    def __init__(
        self,
        log: DecisionLog,
        registry: Registry,
        config: OnlineUpdateConfig,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.log = log
        self.registry = registry
        self.config = config
        self.clock: Clock = clock if clock is not None else RealClock()
        self.schema, self.catalog = app_spaces(config.app)
        self.reward_spec = config.resolved_reward_spec()
        self.baseline = baseline_policy(
            f"{config.app}-rules", self.schema, self.catalog, app_rules(config.app)
        )
        self.refusals = 0
        self.published: list[str] = []
        self._start()

    # -- state ----------------------------------------------------------------------------

    def _start(self) -> None:
        """Load the alias's version and resume from its cursor (or start a chain at it)."""
        config = self.config
        record = self.registry.require_alias(config.name, config.alias)
        loaded = self.registry.load(config.name, record.version)
        if loaded.manifest.family != BanditPolicy.family or not isinstance(
            loaded.policy, BanditPolicy
        ):
            raise ValidationError(
                f"{config.name}@{config.alias} is {record.version}, a "
                f"{loaded.manifest.family!r} policy; only the ridge bandit family "
                f"({BanditPolicy.family!r}) can be updated online",
                field="family",
            )
        if loaded.manifest.feature_schema.version != self.schema.version:
            raise ValidationError(
                f"{record.version} reads another feature schema than the {config.app} app",
                field="feature_schema",
            )
        self.bandit_config = bandit_config_of(loaded)
        if self.bandit_config.gamma_forget != 1.0:
            raise ValidationError(
                "online updates replace revised rewards, which needs gamma_forget == 1; "
                f"{record.version} was trained with {self.bandit_config.gamma_forget}",
                field="gamma_forget",
            )
        self.seed = loaded.policy.rule.seed
        catalog = loaded.manifest.action_catalog
        self.learner = BanditLearner.from_policy(
            loaded.policy, self.bandit_config, catalog, seed=self.seed
        )
        self.catalog = catalog
        recorded = loaded.manifest.training_config.get("online")
        same_stream = isinstance(recorded, dict) and (
            recorded.get("app") == config.app and recorded.get("reward_spec") == self.reward_spec
        )
        self.cursor = (
            JoinCursor.from_json(recorded["cursor"])
            if same_stream and isinstance(recorded, dict)
            else JoinCursor.start(config.since)
        )
        self.version = record.version
        self.alias_revision = record.revision
        self.contexts: deque[F32] = deque(maxlen=config.trust_contexts)
        self.pending = 0  # folded in since the last publication
        self._since_attempt = 0
        self._last_attempt: float | None = None

    # -- reading the join -----------------------------------------------------------------

    def _history(self, event_ids: list[str]) -> dict[str, list[Example]]:
        by_event: dict[str, list[Example]] = {}
        for i in range(0, len(event_ids), _ID_CHUNK):
            for e in self.log.examples_joined(
                since=float("-inf"),
                app=self.config.app,
                reward_spec=self.reward_spec,
                current_only=False,
                event_ids=event_ids[i : i + _ID_CHUNK],
            ):
                by_event.setdefault(e.event_id, []).append(e)
        return by_event

    def _replaced(self, rows: list[Example]) -> dict[str, Example]:
        """For each late revision, the earlier revision this chain has folded in."""
        late = [e.event_id for e in rows if e.revision > 0]
        if not late:
            return {}
        out: dict[str, Example] = {}
        for event_id, history in self._history(late).items():
            passed = [h for h in history if self.cursor.was_taken(h)]
            if passed:
                out[event_id] = max(passed, key=lambda h: h.revision)
        return out

    def _weights(self, rows: list[Example]) -> npt.NDArray[np.float64] | None:
        if not self.bandit_config.importance_weighting:
            return None
        p = np.array([e.propensity for e in rows], dtype=np.float64)
        return np.minimum(1.0 / p, self.bandit_config.max_importance_weight)

    def _fold(self, rows: list[Example]) -> tuple[int, int, int]:
        """Fold ``rows`` (past the cursor, join order) in; returns (new, revised, skipped)."""
        usable = [e for e in rows if e.action_id in self.catalog]
        replaced = self._replaced(usable)
        fresh = [e for e in usable if e.event_id not in replaced]
        revised = [e for e in usable if e.event_id in replaced]
        if fresh:
            x = self.schema.matrix([e.features for e in fresh])
            self.learner.update(
                x, [e.action_id for e in fresh], [e.reward for e in fresh], self._weights(fresh)
            )
            self.contexts.extend(x)
        if revised:
            x = self.schema.matrix([e.features for e in revised])
            self.learner.revise(
                x,
                [e.action_id for e in revised],
                [replaced[e.event_id].reward for e in revised],
                [e.reward for e in revised],
                self._weights(revised),
            )
        self.cursor = self.cursor.advance(rows, new=len(fresh), revised=len(revised))
        return len(fresh), len(revised), len(rows) - len(usable)

    # -- the hook -------------------------------------------------------------------------

    def poll(self, now: float | None = None) -> PollReport:
        """Fold in what was joined since the cursor; publish if the cadence says so."""
        now = self.clock.now() if now is None else float(now)
        rows = self.log.examples_joined(
            since=self.cursor.time, app=self.config.app, reward_spec=self.reward_spec
        )
        rows = [e for e in rows if self.cursor.is_new(e)]
        new, revised, skipped = self._fold(rows)
        self.pending += new + revised
        self._since_attempt += new + revised
        if self._last_attempt is None:
            self._last_attempt = now
        report = PollReport(folded=new, revised=revised, skipped=skipped, pending=self.pending)
        if not self._due(now):
            return report
        self._last_attempt, self._since_attempt = now, 0
        return self._publish(report, now)

    def _due(self, now: float) -> bool:
        config = self.config
        if self.pending == 0 or self.cursor.examples < config.min_examples:
            return False
        by_count = (
            config.every_examples is not None and self._since_attempt >= config.every_examples
        )
        assert self._last_attempt is not None
        by_time = (
            config.every_seconds is not None and now - self._last_attempt >= config.every_seconds
        )
        return by_count or by_time

    def measure(self, policy: BanditPolicy) -> KlCheck:
        """The gate's KL check of ``policy`` against the rules on the recent contexts."""
        return kl_check(
            policy,
            self.baseline.policy,
            np.asarray(self.contexts, dtype=np.float32).reshape(-1, self.schema.dim),
            self.catalog,
            bound=self.config.kl_bound,
            floor=self.config.baseline_floor,
            baseline_name=self.baseline.version,
        )

    def _refuse(self, report: PollReport, why: str, kl: KlCheck | None = None) -> PollReport:
        self.refusals += 1
        log.warning("online update of %s@%s not published: %s", *self._where(), why)
        return PollReport(
            folded=report.folded,
            revised=report.revised,
            skipped=report.skipped,
            pending=report.pending,
            refused=why,
            kl=kl,
        )

    def _where(self) -> tuple[str, str]:
        return self.config.name, self.config.alias

    def _publish(self, report: PollReport, now: float) -> PollReport:
        config = self.config
        if not self.contexts:
            return self._refuse(report, "no contexts folded in since the start to measure KL on")
        policy = self.learner.policy()
        kl = self.measure(policy)
        if not kl.passed:
            why = (
                f"outside the trust region: mean KL {kl.mean_kl:.4g} nats to the rules "
                f"(floor {kl.floor}) over {kl.n} contexts exceeds the bound {kl.bound}"
            )
            return self._refuse(report, why, kl)
        training: dict[str, Any] = {
            "learner": "bandit",
            "app": config.app,
            **self.bandit_config.to_json(),
            "seed": self.seed,
            "online": {
                "app": config.app,
                "reward_spec": self.reward_spec,
                "cursor": self.cursor.to_json(),
            },
        }
        record = self.registry.register_policy(
            policy,
            name=config.name,
            schema=self.schema,
            catalog=self.catalog,
            actor=config.actor,
            reward_spec_hash=self.reward_spec,
            training_config=training,
            evaluation={"trust_region": kl.to_json()},
            parent_version=self.version,
            created_at=self.clock.now(),
        )
        reason = (
            f"online update: {self.pending} examples since {self.version} "
            f"({self.cursor.examples} in the chain), mean KL {kl.mean_kl:.4g} <= {kl.bound}"
        )
        try:
            moved = self.registry.promote(
                config.name,
                record.version,
                alias=config.alias,
                actor=config.actor,
                reason=reason,
                force=True,
                expected_revision=self.alias_revision,
            )
        except ConflictError:
            why = "the alias moved since this updater last published; restarting from it"
            refused = self._refuse(report, why, kl)
            self._start()
            return refused
        self.version, self.alias_revision, self.pending = record.version, moved.revision, 0
        self.published.append(record.version)
        log.info("online update published %s to %s@%s: %s", record.version, *self._where(), reason)
        return PollReport(
            folded=report.folded,
            revised=report.revised,
            skipped=report.skipped,
            published=record.version,
            kl=kl,
        )
