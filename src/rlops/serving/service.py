"""The decision service: everything the server does, callable in-process.

The HTTP shell (:mod:`rlops.serving.app`) only decodes, authorises and encodes; this
class turns requests into logged decisions:

    features (store, request wins, schema defaults counted)
      -> arm (stable hash of the unit id)        -> the arm's alias in the registry
      -> policy -> masks -> exploration -> trust region to the baseline
      -> one uniform per request, derived from its request id -> action, propensity
      -> Decision (the features actually used, the arm, the version that decided)

It works on micro-batches: the server hands it every request that arrived during one
turn of its event loop, so the feature store is asked once, each policy runs one
batched forward pass, and the log commits once. If an arm's policy is missing, failed
verification or raises, the baseline rules answer those rows (``fallback``), so a valid
request always gets a decision.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rlops.apps.spaces import app_rules, app_spaces
from rlops.core.actions import ActionCatalog
from rlops.core.clock import Clock, RealClock
from rlops.core.errors import NotFoundError, ValidationError
from rlops.core.features import FeatureSchema, FeatureValue
from rlops.core.ids import new_event_id
from rlops.core.records import Decision, Outcome
from rlops.exploration.explorer import ExplorationConfig, Explorer
from rlops.monitoring.monitor import DecisionMonitor
from rlops.monitoring.segments import Segmenter, default_segment
from rlops.policies.artifact import LoadedPolicy
from rlops.policies.stack import PolicyStack, SafetyConfig
from rlops.registry.handle import PolicyHandle
from rlops.registry.records import AliasRecord
from rlops.registry.registry import Registry
from rlops.registry.watch import AliasWatcher, file_watcher
from rlops.serving.bootstrap import baseline_policy
from rlops.serving.experiments import Arm, Router, segment_mask
from rlops.serving.feature_store import FeatureStore, Lookup, merge_features
from rlops.serving.inputs import check_context, check_unit_id
from rlops.serving.metrics import ServerMetrics
from rlops.serving.writer import GroupCommitWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """What a service serves and how it explores.

    ``exploration`` applies to arms that set none of their own; ``safety`` (masks, KL
    bound to the baseline rules) to every arm. ``seed`` keys the per-request draws.
    """

    app: str
    policy_name: str = ""
    seed: int = 0
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)

    @property
    def name(self) -> str:
        return self.policy_name or self.app


@dataclass(frozen=True, slots=True)
class Decided:
    """A logged-to-be decision and how it was made."""

    decision: Decision
    fallback: bool
    defaulted: tuple[str, ...]


def request_uniform(seed: int, key: str) -> float:
    """A uniform in [0, 1) fixed by ``(seed, key)``: the same request draws the same action."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, salt=seed.to_bytes(8, "little"))
    return int.from_bytes(digest.digest(), "little") / 2.0**64


@dataclass(frozen=True, eq=False, slots=True)
class _Part:
    """The requests of one micro-batch that one arm answers (``rows`` index the batch)."""

    rows: list[int]
    values: list[dict[str, FeatureValue]]
    unit_ids: list[str]
    uniforms: npt.NDArray[np.float64]
    ts: list[float]


@dataclass(frozen=True, eq=False, slots=True)
class _Choice:
    """What decided a part, and what it chose."""

    version: str
    catalog: ActionCatalog
    index: npt.NDArray[np.int64]
    propensity: npt.NDArray[np.float64]
    explored: npt.NDArray[np.bool_]
    probs: npt.NDArray[np.float64] | None = None  # the served distributions, for the monitor
    features: npt.NDArray[np.float32] | None = None  # the rows as the deciding schema built them
    schema_version: str = ""


class _Sleep:
    """A waiter that only waits: the watcher re-reads the alias every ``resync`` seconds."""

    def wait(self, timeout: float, stop: threading.Event) -> None:
        stop.wait(timeout)

    def close(self) -> None:
        return None


@dataclass(frozen=True, eq=False)
class _ArmStacks:
    """One arm's serving stacks for one loaded version (with and without exploration)."""

    catalog: ActionCatalog
    schema: FeatureSchema
    exploring: PolicyStack
    plain: PolicyStack | None  # for rows outside the arm's exploration segment


class DecisionService:
    """Decisions and outcomes for one application, logged through a group-commit writer."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        registry: Registry,
        router: Router,
        writer: GroupCommitWriter,
        store: FeatureStore | None = None,
        schema: FeatureSchema | None = None,
        catalog: ActionCatalog | None = None,
        baseline: LoadedPolicy | None = None,
        metrics: ServerMetrics | None = None,
        clock: Clock | None = None,
        monitor: DecisionMonitor | None = None,
        event_ids: Callable[[float | None], str] = new_event_id,
    ) -> None:
        app_schema, app_catalog = app_spaces(config.app)
        self.config = config
        self.app = config.app
        self.name = config.name
        self.schema = schema if schema is not None else app_schema
        self.catalog = catalog if catalog is not None else app_catalog
        self.baseline = (
            baseline
            if baseline is not None
            else baseline_policy(self.name, self.schema, self.catalog, app_rules(config.app))
        )
        self.registry = registry
        self.router = router
        self.writer = writer
        self.store = store
        self._event_id = event_ids
        self.metrics = metrics if metrics is not None else ServerMetrics()
        self.monitor = monitor
        self.clock: Clock = clock if clock is not None else RealClock()
        self._baseline_stack = PolicyStack(self.baseline.policy, self.schema)
        self._handles: dict[str, PolicyHandle | None] = {}
        self._load_errors: dict[str, str] = {}
        self._stacks: dict[tuple[str, str], _ArmStacks] = {}
        self._lock = threading.Lock()
        self._watchers: dict[str, AliasWatcher] = {}
        self._watch: tuple[float, float] | None = None
        self._retry_at: dict[str, float] = {}
        #: Labels decisions by segment for the metrics, with the same definition the
        #: monitor uses (a bounded set of labels).
        self.segmenter = Segmenter(default_segment(self.app), self.schema)
        #: How long an alias that failed to open waits before a decision tries it again.
        self.retry_seconds = 5.0
        for arm in self.router.experiment.arms:
            self._open_handle(arm.alias)
        self._publish_info()

    # -- policies -------------------------------------------------------------------------

    def _open_handle(self, alias: str) -> PolicyHandle | None:
        """The alias's handle, loading it now if this service has none yet."""
        with self._lock:
            if self._handles.get(alias) is not None:
                return self._handles[alias]
            try:
                handle = PolicyHandle.open(
                    self.registry,
                    self.name,
                    alias,
                    load_failures=self.metrics.load_failures.labels(self.app, alias),
                    swaps=self.metrics.swaps.labels(self.app, alias),
                )
            except Exception as error:  # missing alias, damaged artifact: the rules answer
                try:
                    record = self.registry.alias(self.name, alias)
                except Exception:  # the index itself is unreadable
                    record = None
                at = record.version if record is not None else "no version"
                message = f"{at}: {type(error).__name__}: {error}"
                if self._load_errors.get(alias) != message:  # a new failure, not a retry
                    self.metrics.load_failures.labels(self.app, alias).inc()
                self._load_errors[alias] = message
                self._handles[alias] = None
                self._retry_at[alias] = time.monotonic() + self.retry_seconds
                return None
            self._load_errors.pop(alias, None)
            self._handles[alias] = handle
            return handle

    def follow(self, record: AliasRecord) -> None:
        """An alias moved (watcher or admin call): serve where it points now."""
        if record.name != self.name:
            return
        handle = self._handles.get(record.alias)
        if handle is None:
            self._open_handle(record.alias)
        else:
            handle.on_alias(record)
        self._publish_info()

    def watch(self, *, interval: float = 0.05, resync: float = 5.0) -> None:
        """Follow every arm's alias in the registry (moves made by other processes).

        Idempotent: called again when the experiment gains an arm, it watches the new alias.
        """
        self._watch = (interval, resync)
        for alias in sorted({arm.alias for arm in self.router.experiment.arms}):
            if alias in self._watchers:
                continue
            try:
                watcher = file_watcher(
                    self.registry, self.name, alias, interval=interval, resync=resync
                )
            except ValidationError:  # not a SQLite index: re-read the alias on a timer
                watcher = AliasWatcher(
                    functools.partial(self.registry.alias, self.name, alias),
                    _Sleep(),
                    resync=max(interval, 1.0),
                    name=f"watch-{self.name}-{alias}",
                )
            self._watchers[alias] = watcher.start(self.follow)

    def close(self) -> None:
        """Stop the watchers and the router's file follower (the writer is the caller's)."""
        for watcher in self._watchers.values():
            watcher.stop()
        self._watchers.clear()
        self.router.stop()

    def handle(self, alias: str) -> PolicyHandle | None:
        return self._handles.get(alias) or self._open_handle(alias)

    def alias_of(self, arm_name: str) -> str | None:
        """The alias an arm serves, or None for an arm the experiment no longer has (its
        window's metrics can still alert after an A/B test ends)."""
        for arm in self.router.experiment.arms:
            if arm.name == arm_name:
                return arm.alias
        return None

    def arm_versions(self) -> dict[str, tuple[str | None, str | None]]:
        """``arm -> (version serving now, version before it)`` (the reward monitor's roles)."""
        out: dict[str, tuple[str | None, str | None]] = {}
        for arm in self.router.experiment.arms:
            handle = self._handles.get(arm.alias)
            previous = handle.previous if handle is not None else None
            out[arm.name] = (
                self.serving_version(arm.alias),
                previous.version if previous is not None else None,
            )
        return out

    def serving_version(self, alias: str) -> str | None:
        handle = self._handles.get(alias)
        return handle.current.version if handle is not None else None

    def _publish_info(self) -> None:
        gauge = self.metrics.policy_info
        gauge.clear()
        for arm in self.router.experiment.arms:
            version = self.serving_version(arm.alias)
            gauge.labels(self.app, arm.name, arm.alias, version or self.baseline.version).set(
                1.0 if version is not None else 0.0
            )

    def _arm_stacks(self, arm: Arm, loaded: LoadedPolicy) -> _ArmStacks:
        key = (arm.name, loaded.version)
        stacks = self._stacks.get(key)
        if stacks is not None:
            return stacks
        schema = loaded.manifest.feature_schema
        exploration = arm.exploration if arm.exploration is not None else self.config.exploration
        baseline = self.baseline.policy if self.config.safety.kl_bound is not None else None
        explorer = Explorer(exploration, self.clock) if exploration.kind != "none" else None
        exploring = PolicyStack(
            loaded.policy, schema, self.config.safety, explorer=explorer, baseline=baseline
        )
        plain = None
        if arm.explore_segment is not None and explorer is not None:
            plain = PolicyStack(loaded.policy, schema, self.config.safety, baseline=baseline)
        stacks = _ArmStacks(loaded.manifest.action_catalog, schema, exploring, plain)
        with self._lock:
            if len(self._stacks) >= 64:  # versions come and go; keep the cache small
                self._stacks.clear()
            self._stacks[key] = stacks
        return stacks

    def exploration_rate(self, arm_name: str) -> float:
        """The current epsilon (or temperature) of an arm's serving stack, 0 if none."""
        arm = self.router.experiment.arm(arm_name)
        handle = self._handles.get(arm.alias)
        if handle is None:
            return 0.0
        stacks = self._stacks.get((arm.name, handle.current.version))
        explorer = stacks.exploring.explorer if stacks is not None else None
        return explorer.rate() if explorer is not None else 0.0

    # -- deciding -------------------------------------------------------------------------

    def check(self, context: Mapping[str, Any]) -> dict[str, FeatureValue]:
        return check_context(self.schema, context)

    def decide(
        self,
        unit_ids: Sequence[str],
        contexts: Sequence[Mapping[str, FeatureValue]],
        request_ids: Sequence[str | None] | None = None,
        *,
        now: float | None = None,
        lookup: Lookup | None = None,
    ) -> list[Decided]:
        """Decisions for checked contexts (see :meth:`check`); nothing is logged here.

        ``lookup`` is the feature store's answer for ``unit_ids`` when the caller already
        asked (the server asks off the event loop); otherwise the store is asked here.
        """
        n = len(unit_ids)
        if len(contexts) != n or (request_ids is not None and len(request_ids) != n):
            raise ValidationError("unit_ids, contexts and request_ids differ in length")
        for i, unit_id in enumerate(unit_ids):  # decisions are built trusted: check here
            check_unit_id(unit_id, f"unit_ids[{i}]")
        now = self.clock.now() if now is None else now
        if lookup is None and self.store is not None:
            lookup = self.store.lookup(unit_ids)
        if lookup is not None and not lookup.available:
            self.metrics.store_unavailable.labels(self.app).inc(n)
        values: list[dict[str, FeatureValue]] = []
        defaulted: list[tuple[str, ...]] = []
        counts: dict[str, int] = {}
        for i in range(n):
            stored = lookup.rows[i] if lookup is not None else None
            row, missing = merge_features(self.schema, stored, contexts[i])
            values.append(row)
            defaulted.append(missing)
            for name in missing:
                counts[name] = counts.get(name, 0) + 1
        for name, count in counts.items():
            self.metrics.feature_defaults.labels(self.app, name).inc(count)
        event_ids = [self._event_id(now) for _ in range(n)]
        keys = request_ids if request_ids is not None else [None] * n
        uniforms = np.fromiter(
            (
                request_uniform(self.config.seed, key if key is not None else event_ids[i])
                for i, key in enumerate(keys)
            ),
            dtype=np.float64,
            count=n,
        )
        arms = self.router.assign(unit_ids)
        groups: dict[str, list[int]] = {}
        for i, arm in enumerate(arms):
            groups.setdefault(arm.name, []).append(i)
        by_name = {arm.name: arm for arm in arms}
        out: list[Decided] = []
        order: list[int] = []
        for arm_name, rows in groups.items():
            arm = by_name[arm_name]
            part = _Part(
                rows=rows,
                values=[values[i] for i in rows],
                unit_ids=[unit_ids[i] for i in rows],
                uniforms=uniforms[np.asarray(rows)],
                ts=[now] * len(rows),
            )
            choice, fallback = self._choose(arm, part)
            ids = choice.catalog.ids
            picked, propensity, explored_rows = (
                choice.index.tolist(),
                choice.propensity.tolist(),
                choice.explored.tolist(),
            )
            for j, i in enumerate(rows):
                decision = Decision.trusted(
                    event_ids[i],
                    now,
                    self.app,
                    unit_ids[i],
                    arm.name,
                    choice.version,
                    values[i],
                    ids,
                    ids[picked[j]],
                    propensity[j],
                    explored_rows[j],
                )
                out.append(Decided(decision, fallback, defaulted[i]))
                order.append(i)
            fallback_label = "true" if fallback else "false"
            tally = Counter(
                zip((ids[p] for p in picked), self.segmenter.label(part.values), strict=True)
            )
            for (action, segment_value), count in tally.items():
                self.metrics.decisions.labels(
                    self.app, arm_name, choice.version, action, segment_value, fallback_label
                ).inc(count)
            explored = int(choice.explored.sum())
            if explored:
                self.metrics.explored.labels(self.app, arm_name).inc(explored)
            if self.monitor is not None:
                self._observe(out[len(out) - len(rows) :], choice, part)
        decided: list[Decided] = [out[0]] * n
        for position, i in enumerate(order):
            decided[i] = out[position]
        return decided

    def _observe(self, decided: list[Decided], choice: _Choice, part: _Part) -> None:
        """Feed the monitor one arm's rows, with the KL to the baseline where it is defined
        (the same catalog as the baseline's)."""
        assert self.monitor is not None
        served = baseline = None
        if choice.probs is not None and choice.catalog.ids == self.catalog.ids:
            same = choice.features is not None and choice.schema_version == self.schema.version
            x = choice.features if same else self.schema.matrix_checked(part.values)
            served = choice.probs
            baseline = self.baseline.policy.probabilities(x, self.catalog)
        try:
            self.monitor.observe(decided, served, baseline)
        except Exception:  # monitoring must never cost a decision
            log.exception("the decision monitor failed")

    def _choose(self, arm: Arm, part: _Part) -> tuple[_Choice, bool]:
        """The arm's policy decides ``part``; if it cannot, the baseline rules do."""
        handle = self._handles.get(arm.alias)
        if handle is None and time.monotonic() >= self._retry_at.get(arm.alias, 0.0):
            handle = self._open_handle(arm.alias)  # a missing alias may exist by now
        reason = "missing"
        if handle is not None:
            try:
                return handle.run(lambda loaded: self._decide_rows(arm, loaded, part)).result, False
            except Exception:  # whatever the policy did, the rules answer these requests
                log.exception("arm %s: the policy failed; falling back", arm.name)
                reason = "error"
        self.metrics.fallbacks.labels(self.app, arm.name, reason).inc(len(part.rows))
        x = self.schema.matrix_checked(part.values)
        d = self._baseline_stack.decide(x, self.catalog, None, uniforms=part.uniforms)
        choice = _Choice(
            self.baseline.version,
            self.catalog,
            d.index,
            d.propensity,
            np.zeros(len(part.rows), dtype=bool),
            d.probs,
            x,
            self.schema.version,
        )
        return choice, True

    def _decide_rows(self, arm: Arm, loaded: LoadedPolicy, part: _Part) -> _Choice:
        choice = self._decide_rows_unchecked(arm, loaded, part)
        p = choice.propensity
        if not (np.all(np.isfinite(p)) and np.all(p > 0.0) and np.all(p <= 1.0 + 1e-9)):
            # a NaN or a zero from the policy: fail this arm's rows over to the rules here,
            # not the whole micro-batch later when the decisions are built
            raise FloatingPointError(f"{loaded.version} produced propensities outside (0, 1]")
        np.minimum(p, 1.0, out=p)
        return choice

    def _decide_rows_unchecked(self, arm: Arm, loaded: LoadedPolicy, part: _Part) -> _Choice:
        stacks = self._arm_stacks(arm, loaded)
        x = stacks.schema.matrix_checked(part.values)
        if stacks.plain is None:
            d = stacks.exploring.decide(
                x, stacks.catalog, None, part.unit_ids, part.ts, uniforms=part.uniforms
            )
            return _Choice(
                loaded.version,
                stacks.catalog,
                d.index,
                d.propensity,
                d.explored,
                d.probs,
                x,
                stacks.schema.version,
            )
        inside = segment_mask(arm.explore_segment, part.values)
        n = len(part.rows)
        index = np.zeros(n, dtype=np.int64)
        propensity = np.zeros(n)
        explored = np.zeros(n, dtype=bool)
        probs = np.zeros((n, len(stacks.catalog)))
        for stack, rows in ((stacks.exploring, inside), (stacks.plain, ~inside)):
            if not rows.any():
                continue
            at = np.flatnonzero(rows)
            d = stack.decide(
                x[at],
                stacks.catalog,
                None,
                [part.unit_ids[i] for i in at],
                [part.ts[i] for i in at],
                uniforms=part.uniforms[at],
            )
            index[at], propensity[at], explored[at] = d.index, d.propensity, d.explored
            probs[at] = d.probs
        return _Choice(
            loaded.version,
            stacks.catalog,
            index,
            propensity,
            explored,
            probs,
            x,
            stacks.schema.version,
        )

    # -- in-process API with logging ------------------------------------------------------

    def decide_and_log(
        self,
        unit_ids: Sequence[str],
        contexts: Sequence[Mapping[str, Any]],
        request_ids: Sequence[str | None] | None = None,
    ) -> list[Decided]:
        """Check, decide and log durably; returns once the decisions are in the log."""
        checked = [self.check(c) for c in contexts]
        decided = self.decide(unit_ids, checked, request_ids)
        self.writer.write("decisions", [d.decision for d in decided])
        return decided

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> int:
        """Log outcomes durably (idempotent on ``outcome_id``)."""
        self.writer.write("outcomes", list(outcomes))
        self.metrics.outcomes.labels(self.app).inc(len(outcomes))
        return len(outcomes)

    # -- administration -------------------------------------------------------------------

    def promote(
        self,
        alias: str,
        version: str,
        *,
        actor: str,
        reason: str = "",
        force: bool = False,
        expected_revision: int | None = None,
    ) -> AliasRecord:
        record = self.registry.promote(
            self.name,
            version,
            alias=alias,
            actor=actor,
            reason=reason,
            force=force,
            expected_revision=expected_revision,
        )
        self.follow(record)
        return record

    def rollback(
        self, alias: str, *, actor: str, reason: str = "", expected_revision: int | None = None
    ) -> AliasRecord:
        record = self.registry.rollback(
            self.name, alias=alias, actor=actor, reason=reason, expected_revision=expected_revision
        )
        self.follow(record)
        return record

    def set_shares(
        self, shares: Mapping[str, float], *, expected_revision: int | None = None
    ) -> dict[str, Any]:
        names = {arm.name for arm in self.router.experiment.arms}
        for name in shares:
            if name not in names:
                raise NotFoundError(
                    f"the experiment has no arm {name!r}; arms: {sorted(names)}",
                    field=f"shares.{name}",
                )
        experiment = self.router.set_shares(shares, expected_revision=expected_revision)
        self.experiment_changed()
        return experiment.to_json()

    def experiment_changed(self) -> None:
        """Load and watch the aliases of arms the experiment gained."""
        for arm in self.router.experiment.arms:
            if arm.alias not in self._handles:
                self._open_handle(arm.alias)
        if self._watch is not None:
            self.watch(interval=self._watch[0], resync=self._watch[1])
        self._publish_info()

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """Ready when every arm with traffic has a verified policy and the log is writable."""
        checks: dict[str, str] = {}
        ready = True
        for arm in self.router.experiment.arms:
            if arm.share <= 0:
                continue
            version = self.serving_version(arm.alias)
            if version is None:
                ready = False
                error = self._load_errors.get(arm.alias, "not loaded")
                checks[f"arm:{arm.name}"] = f"no verified policy for {arm.alias!r} ({error})"
            else:
                checks[f"arm:{arm.name}"] = f"ok {version}"
        if self.writer.healthy:
            checks["log"] = "ok"
        else:
            ready = False
            checks["log"] = f"not writable ({self.writer.last_error or 'writer stopped'})"
        return ready, checks

    def load_error(self, alias: str) -> str | None:
        return self._load_errors.get(alias)
