"""The retraining loop: trigger, retrain, gate, canary, then promote or roll back.

Each :meth:`RetrainingLoop.step` does at most one thing. While a canary is live it is
reviewed (nothing else is trained meanwhile: two candidates at once would confound each
other's comparison); otherwise the trigger is checked, and past the threshold of newly
joined examples (or the schedule) one retraining cycle runs. Every move goes through the
registry (aliases, with the reason) and the experiment file the servers follow (shares),
and lands in the loop's journal with its figures.

The canary arm is listed last in the experiment, so growing its share only ever adds
units to it; between canaries its share is 0 and it serves nobody.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from rlops.apps.defaults import join_configs
from rlops.core.clock import Clock, RealClock
from rlops.core.errors import ConflictError, RlopsError, ValidationError
from rlops.pipeline.canary import ArmRewards, CanaryReview, review_canary
from rlops.pipeline.loop_config import LoopConfig
from rlops.pipeline.loop_state import CanaryRun, LoopEvent, LoopFiles, LoopState
from rlops.pipeline.retrain import retrain
from rlops.registry.records import PRODUCTION
from rlops.registry.registry import Registry
from rlops.serving.experiments import Arm, Experiment, Router
from rlops.store.log import DecisionLog

log = logging.getLogger(__name__)

PRODUCTION_ARM = "production"
# Names of alerts firing on the canary arm right now (e.g. from the in-process evaluator).
CanaryAlerts = Callable[[], Sequence[str]]


def loop_experiment(config: LoopConfig, current: Experiment | None) -> Experiment:
    """The experiment with a production arm and the canary arm last (share 0 if new)."""
    canary = config.canary
    if current is None:
        first = (Arm(PRODUCTION_ARM, PRODUCTION, 1.0), Arm(canary.arm, canary.alias, 0.0))
        return Experiment(config.app, config.app, first)
    names = [arm.name for arm in current.arms]
    if canary.arm in names and names[-1] == canary.arm:
        return current
    if canary.arm in names:
        raise RlopsError(
            f"the experiment's canary arm {canary.arm!r} must be listed last", field="arms"
        )
    arms = (*current.arms, Arm(canary.arm, canary.alias, 0.0))
    return replace(current, arms=arms, revision=current.revision + 1)


class RetrainingLoop:
    """One application's loop over a log, a registry and an experiment file."""

    def __init__(
        self,
        config: LoopConfig,
        *,
        log: DecisionLog,
        registry: Registry,
        experiment: Path,
        directory: Path,
        clock: Clock | None = None,
        alerts: CanaryAlerts | None = None,
    ) -> None:
        self.config = config
        self.log = log
        self.registry = registry
        self.clock = clock or RealClock()
        self.alerts = alerts
        self.files = LoopFiles(directory)
        self.snapshots = Path(directory) / "snapshots"
        self.reward_spec = join_configs()[config.app].reward.hash
        exists = Path(experiment).exists()
        # An existing file wins over the experiment given here (the Router reads it).
        self.router = Router(loop_experiment(config, None), path=experiment)
        wanted = loop_experiment(config, self.router.experiment)
        if not exists or wanted is not self.router.experiment:
            self.router.update(wanted)

    @property
    def state(self) -> LoopState:
        return self.files.load()

    def events(self) -> list[LoopEvent]:
        return self.files.events()

    def new_examples(self, state: LoopState | None = None) -> int:
        """Current examples joined since the last training snapshot."""
        state = state or self.files.load()
        since = None if state.trained_through is None else state.trained_through + 1e-6
        return self.log.count_examples(
            app=self.config.app, reward_spec=self.reward_spec, since=since
        )

    def step(self) -> list[LoopEvent]:
        """Review the canary, or retrain if due; the events this step recorded."""
        state = self.files.load()
        now = self.clock.now()
        if state.canary is not None:
            return self._review(state, now)
        last = state.last_run_at
        if (
            state.failures
            and last is not None
            and now - last < self.config.retry_after(state.failures)
        ):
            return []  # backing off after a failed retraining
        new = self.new_examples(state)
        due = new >= self.config.min_new_examples
        schedule = self.config.schedule_seconds
        if not due and schedule is not None and new > 0:
            due = state.last_run_at is None or now - state.last_run_at >= schedule
        if not due:
            return []
        return self._retrain(state, now, new)

    def run_forever(self, *, interval: float, stop: threading.Event) -> None:
        """Step every ``interval`` seconds until ``stop``; a failed step is logged, not fatal."""
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # the loop must outlive one bad cycle; the journal has it
                log.exception("retraining loop step failed")
            stop.wait(interval)

    # -- retraining ------------------------------------------------------------------------

    def _retrain(self, state: LoopState, now: float, new: int) -> list[LoopEvent]:
        c = self.config
        events = [self._record(now, "triggered", None, f"{new} new examples", {"new": new})]
        try:
            candidate = retrain(
                c,
                self.log,
                self.registry,
                snapshots=self.snapshots,
                now=now,
                trained_through=state.trained_through,
            )
        except Exception as error:  # a learner's crash too: journaled, then backed off
            if isinstance(error, RlopsError):
                why = error.message
            else:
                log.exception("retraining failed")
                why = f"{type(error).__name__}: {error}"
            failures = state.failures + 1
            details: dict[str, object] = {
                "failures": failures,
                "retry_in_seconds": c.retry_after(failures),
            }
            events.append(self._record(now, "retrain_failed", None, why, details))
            self.files.save(
                replace(state, last_run_at=now, cycles=state.cycles + 1, failures=failures)
            )
            return events
        state = replace(
            state,
            trained_through=candidate.trained_through,
            last_run_at=now,
            cycles=state.cycles + 1,
            failures=0,
        )
        summary = candidate.summary()
        if not candidate.gate.passed:
            reason = "; ".join(candidate.gate.failures())
            events.append(self._record(now, "gate_failed", candidate.version, reason, summary))
            self.files.save(state)
            return events
        production = self.registry.require_alias(c.policy_name, PRODUCTION).version
        reason = f"gate passed against {production}"
        events.append(self._begin_canary(state, now, candidate.version, reason, summary))
        return events

    def start_canary(self, version: str, *, reason: str) -> LoopEvent:
        """Put ``version`` on the canary arm without the gate (an operator's own policy).

        The canary is then reviewed like any other, so a worse policy is rolled back on
        its live rewards; production stays gated in the registry, so an ungated version
        that the canary finds good still cannot take production without a gate record.
        """
        if not reason.strip():
            raise ValidationError("starting a canary by hand needs a reason", field="reason")
        state = self.files.load()
        if state.canary is not None:
            raise ConflictError(
                f"canary {state.canary.version} is in progress: end it first", field="version"
            )
        c = self.config
        self.registry.load(c.policy_name, version)  # exists and verifies, or raises
        production = self.registry.require_alias(c.policy_name, PRODUCTION).version
        if version == production:
            raise ValidationError(f"{version} is already in production", field="version")
        return self._begin_canary(state, self.clock.now(), version, reason, {"gated": False})

    def _begin_canary(
        self, state: LoopState, now: float, version: str, reason: str, details: dict[str, object]
    ) -> LoopEvent:
        """Record the run first, then move the alias and traffic.

        In this order a crash in between leaves a run whose alias was never moved, which
        the next review ends (``canary_ended``); the other order could leave a canary
        serving traffic that no run reviews.
        """
        c = self.config
        production = self.registry.require_alias(c.policy_name, PRODUCTION).version
        self.files.save(state.with_canary(CanaryRun(version, now, production)))
        self.registry.promote(
            c.policy_name,
            version,
            alias=c.canary.alias,
            actor="rlops loop",
            reason=f"{reason}; canary at {c.canary.share:.0%}",
        )
        self._set_canary(c.canary.share, exploration=True)
        return self._record(now, "canary_started", version, reason, details)

    # -- the canary ------------------------------------------------------------------------

    def canary_rewards(self, run: CanaryRun) -> tuple[int, ArmRewards, ArmRewards]:
        """Decisions the canary served, and both arms' joined rewards since it started."""
        c = self.config
        decisions = self.log.count_decisions(
            start=run.started_at, app=c.app, arm=c.canary.arm, policy_version=run.version
        )
        examples = self.log.examples(app=c.app, reward_spec=self.reward_spec, start=run.started_at)
        mine = [e for e in examples if e.arm == c.canary.arm and e.policy_version == run.version]
        theirs = [
            e for e in examples if e.arm == PRODUCTION_ARM and e.policy_version == run.production
        ]
        return (
            decisions,
            ArmRewards.of([e.reward for e in mine], [e.unit_id for e in mine]),
            ArmRewards.of([e.reward for e in theirs], [e.unit_id for e in theirs]),
        )

    def _review(self, state: LoopState, now: float) -> list[LoopEvent]:
        run = state.canary
        assert run is not None
        c = self.config
        held = self.registry.alias(c.policy_name, c.canary.alias)
        if held is None or held.version != run.version:
            # Someone (a guardrail, an operator) moved the canary alias: the run is over.
            self._set_canary(0.0)
            self.files.save(state.with_canary(None))
            moved = "removed" if held is None else f"moved to {held.version}"
            return [self._record(now, "canary_ended", run.version, f"canary alias {moved}", {})]
        decisions, canary, production = self.canary_rewards(run)
        alerts = list(self.alerts()) if self.alerts is not None else []
        review = review_canary(
            run,
            c.canary,
            now=now,
            decisions=decisions,
            canary=canary,
            production=production,
            alerts=alerts,
        )
        if review.verdict == "wait":
            return []
        if review.verdict == "promote":
            return self._promote(state, run, review, now)
        return self._roll_back(state, run, review, now)

    def _promote(
        self, state: LoopState, run: CanaryRun, review: CanaryReview, now: float
    ) -> list[LoopEvent]:
        c = self.config
        try:
            self.registry.promote(
                c.policy_name,
                run.version,
                alias=PRODUCTION,
                actor="rlops loop",
                reason=f"canary: {review.reason}",
            )
        except RlopsError as error:  # e.g. production moved during the canary: gate is stale
            review = CanaryReview(
                "rollback", f"could not promote: {error.message}", review.decisions, review.examples
            )
            return self._roll_back(state, run, review, now)
        self._set_canary(0.0)
        self.files.save(state.with_canary(None))
        return [self._record(now, "promoted", run.version, review.reason, review.details())]

    def _roll_back(
        self, state: LoopState, run: CanaryRun, review: CanaryReview, now: float
    ) -> list[LoopEvent]:
        """Take the canary's traffic away, then point its alias back at production, so no
        server keeps the rejected policy loaded and no later share change serves it."""
        self._set_canary(0.0)
        c = self.config
        details = review.details()
        try:
            production = self.registry.require_alias(c.policy_name, PRODUCTION).version
            self.registry.promote(
                c.policy_name,
                production,
                alias=c.canary.alias,
                actor="rlops loop",
                reason=f"canary {run.version} rolled back",
            )
        except RlopsError as error:  # the traffic is already back; say what was left
            details["canary_alias"] = f"left on {run.version}: {error.message}"
        self.files.save(state.with_canary(None))
        return [self._record(now, "rolled_back", run.version, review.reason, details)]

    # -- helpers ---------------------------------------------------------------------------

    def _set_canary(self, share: float, *, exploration: bool = False) -> None:
        """Move traffic between production and the canary arm (the file servers follow)."""
        c = self.config.canary
        current = self.router.experiment
        arms = []
        for arm in current.arms:
            if arm.name == c.arm:
                arm = replace(arm, share=share, exploration=c.exploration if exploration else None)
            elif arm.name == PRODUCTION_ARM:
                others = sum(a.share for a in current.arms if a.name not in (c.arm, PRODUCTION_ARM))
                arm = replace(arm, share=1.0 - share - others)
            arms.append(arm)
        self.router.update(replace(current, arms=tuple(arms)))

    def _record(
        self, at: float, kind: str, version: str | None, reason: str, details: dict[str, object]
    ) -> LoopEvent:
        event = LoopEvent(at=at, kind=kind, version=version, reason=reason, details=dict(details))
        self.files.record(event)
        log.info("loop %s %s: %s", kind, version or "", reason)
        return event
