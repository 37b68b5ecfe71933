"""The loop's moving parts without a market: trigger, experiment file, restart, journal.

The trigger tests read a counting log (all the trigger reads is ``count_examples``) and
a spy in place of :func:`retrain`, since what is under test is *when* a cycle starts;
the real cycle runs in ``test_loop_safety``. Everything else is real: the registry, the
experiment file, the state and journal on disk, a SQLite decision log.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from rlops.core.clock import ManualClock
from rlops.core.errors import ConflictError, NotFoundError, RlopsError, ValidationError
from rlops.pipeline import loop as loop_module
from rlops.pipeline.loop import RetrainingLoop
from rlops.pipeline.loop_config import LoopConfig
from rlops.pipeline.loop_state import LoopEvent, LoopFiles, LoopState
from rlops.registry.registry import Registry
from rlops.serving.experiments import Arm, Experiment, load_experiment, save_experiment
from rlops.store import SqlDecisionLog, open_log
from tests.pipeline.helpers import bootstrap_rules, register_highest_price, small_loop

T0 = 1_800_000_000.0


@dataclass
class CountingLog:
    """Examples' ``joined_at`` times; counts them as the log's ``count_examples`` does."""

    joined: list[float] = field(default_factory=list)

    def count_examples(
        self, *, app: str | None = None, reward_spec: str | None = None, since: float | None = None
    ) -> int:
        return sum(1 for t in self.joined if since is None or t >= since)


@dataclass(frozen=True)
class FailedCandidate:
    """What ``_retrain`` reads of a candidate, for one that failed its gate."""

    version: str
    trained_through: float
    gate: Any

    def summary(self) -> dict[str, Any]:
        return {"failures": ["battery: FAIL"]}


@dataclass(frozen=True)
class FailedGate:
    passed: bool = False

    def failures(self) -> list[str]:
        return ["battery: FAIL"]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(tmp_path / "registry", clock=ManualClock(T0))
    yield reg
    reg.close()


@pytest.fixture
def sql_log(tmp_path: Path) -> Iterator[SqlDecisionLog]:
    log = open_log(tmp_path / "log.db")
    yield log
    log.close()


def counting_loop(
    tmp_path: Path, registry: Registry, config: LoopConfig, monkeypatch: pytest.MonkeyPatch
) -> tuple[RetrainingLoop, CountingLog, ManualClock, list[float | None]]:
    """A loop over a counting log whose retrain spy 'trains' through the newest example."""
    log, clock, calls = CountingLog(), ManualClock(T0), []

    def spy(config: LoopConfig, log_: Any, registry_: Any, **kw: Any) -> FailedCandidate:
        calls.append(kw["trained_through"])
        return FailedCandidate("v-bad", max(log.joined), FailedGate())

    monkeypatch.setattr(loop_module, "retrain", spy)
    loop = RetrainingLoop(
        config,
        log=log,  # type: ignore[arg-type]  # the trigger reads count_examples only
        registry=registry,
        experiment=tmp_path / "experiment.json",
        directory=tmp_path / "loop",
        clock=clock,
    )
    return loop, log, clock, calls


def test_the_threshold_triggers_once_enough_new_examples_joined(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop, log, clock, calls = counting_loop(
        tmp_path, registry, LoopConfig(app="pricing", min_new_examples=5), monkeypatch
    )
    log.joined += [T0 + i for i in range(4)]
    assert loop.step() == [] and calls == []
    log.joined.append(T0 + 4)
    kinds = [e.kind for e in loop.step()]
    assert kinds == ["triggered", "gate_failed"]
    assert calls == [None]  # the first cycle trains on everything
    assert loop.state.trained_through == T0 + 4 and loop.state.cycles == 1
    # Only examples joined after the snapshot count toward the next cycle.
    log.joined += [T0 + 10 + i for i in range(4)]
    assert loop.new_examples() == 4 and loop.step() == []
    log.joined.append(T0 + 20)
    clock.advance(1)
    events = loop.step()
    assert events[0].reason == "5 new examples" and events[0].details == {"new": 5}
    assert calls == [None, T0 + 4]


def test_the_schedule_triggers_on_any_new_example_once_its_period_passed(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = LoopConfig(app="pricing", min_new_examples=1000, schedule_seconds=100.0)
    loop, log, clock, calls = counting_loop(tmp_path, registry, config, monkeypatch)
    assert loop.step() == []  # nothing new: no cycle, schedule or not
    log.joined.append(T0)
    assert [e.kind for e in loop.step()] == ["triggered", "gate_failed"]  # never ran yet
    log.joined.append(T0 + 1)
    clock.advance(99)
    assert loop.step() == []  # one new example, but the period has not passed
    clock.advance(1)
    assert [e.kind for e in loop.step()] == ["triggered", "gate_failed"]
    clock.advance(500)
    assert loop.step() == []  # the period passed, but nothing new joined
    assert len(calls) == 2


def test_a_failed_retraining_is_journaled_and_leaves_the_snapshot_mark(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop, log, _, _ = counting_loop(
        tmp_path, registry, LoopConfig(app="pricing", min_new_examples=1), monkeypatch
    )

    def broken(*args: Any, **kw: Any) -> None:
        raise ValidationError("12 pricing examples; retraining needs 50", field="examples")

    monkeypatch.setattr(loop_module, "retrain", broken)
    log.joined.append(T0)
    events = loop.step()
    assert [e.kind for e in events] == ["triggered", "retrain_failed"]
    assert events[1].reason == "12 pricing examples; retraining needs 50"
    state = loop.state
    assert state.trained_through is None and state.cycles == 1 and state.last_run_at == T0
    assert state.canary is None and state.failures == 1
    assert events[1].details == {"failures": 1, "retry_in_seconds": 600.0}


def test_failed_retrainings_back_off_doubling_and_a_run_resets_it(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = LoopConfig(app="pricing", min_new_examples=1, retry_seconds=100.0)
    loop, log, clock, calls = counting_loop(tmp_path, registry, config, monkeypatch)
    outcomes: list[Exception | None] = [ValidationError("too few", field="examples")] * 2
    outcomes += [RuntimeError("learner crashed"), None]

    def flaky(config: LoopConfig, log_: Any, registry_: Any, **kw: Any) -> FailedCandidate:
        error = outcomes.pop(0)
        calls.append(kw["trained_through"])
        if error is not None:
            raise error
        return FailedCandidate("v-bad", max(log.joined), FailedGate())

    monkeypatch.setattr(loop_module, "retrain", flaky)
    log.joined.append(T0)
    kinds = []
    # Fails at 0; waits 100 s; fails at 100; waits 200 s; crashes at 300; waits 400 s.
    for t in (0, 50, 99, 100, 250, 299, 300, 699, 700):
        clock.set(T0 + t)
        kinds.append((t, [e.kind for e in loop.step()]))
    tried = [t for t, k in kinds if k]
    assert tried == [0, 100, 300, 700]
    assert kinds[-1][1] == ["triggered", "gate_failed"]  # it ran: the back-off is over
    crash = [e for e in loop.events() if e.kind == "retrain_failed"][-1]
    assert crash.reason == "RuntimeError: learner crashed"
    assert crash.details == {"failures": 3, "retry_in_seconds": 400.0}
    assert loop.state.failures == 0 and len(calls) == 4
    assert LoopConfig(app="pricing").retry_after(50) == 600.0 * 64  # capped


def test_the_retry_interval_is_checked() -> None:
    with pytest.raises(ValidationError) as caught:
        LoopConfig(app="pricing", retry_seconds=0.0)
    assert caught.value.field == "retry_seconds"


# -- the experiment file ----------------------------------------------------------------------


def make_loop(
    tmp_path: Path, registry: Registry, log: Any, config: LoopConfig | None = None, **kw: Any
) -> RetrainingLoop:
    return RetrainingLoop(
        config or small_loop(),
        log=log,
        registry=registry,
        experiment=tmp_path / "experiment.json",
        directory=tmp_path / "loop",
        clock=kw.pop("clock", ManualClock(T0)),
        **kw,
    )


def test_a_new_experiment_file_has_production_and_the_canary_arm_last(
    tmp_path: Path, registry: Registry
) -> None:
    make_loop(tmp_path, registry, CountingLog())
    experiment = load_experiment(tmp_path / "experiment.json")
    assert [(a.name, a.alias, a.share) for a in experiment.arms] == [
        ("production", "production", 1.0),
        ("canary", "canary", 0.0),
    ]


def test_an_existing_experiment_gains_the_canary_arm_last(
    tmp_path: Path, registry: Registry
) -> None:
    path = tmp_path / "experiment.json"
    arms = (Arm("production", "production", 0.9), Arm("holdout", "rules", 0.1))
    save_experiment(path, Experiment("pricing", "salt-1", arms, revision=4))
    loop = make_loop(tmp_path, registry, CountingLog())
    experiment = load_experiment(path)
    assert [a.name for a in experiment.arms] == ["production", "holdout", "canary"]
    assert experiment.arms[:2] == arms  # nothing else touched, the salt kept
    assert experiment.salt == "salt-1" and experiment.arms[2].share == 0.0
    assert experiment.revision > 4
    # A second loop over the same file changes nothing.
    before = path.read_bytes()
    make_loop(tmp_path, registry, CountingLog())
    assert path.read_bytes() == before
    assert loop.router.experiment == experiment


def test_an_experiment_with_the_canary_arm_not_last_is_refused(
    tmp_path: Path, registry: Registry
) -> None:
    path = tmp_path / "experiment.json"
    arms = (Arm("canary", "canary", 0.0), Arm("production", "production", 1.0))
    save_experiment(path, Experiment("pricing", "pricing", arms, revision=2))
    before = path.read_bytes()
    with pytest.raises(RlopsError) as caught:
        make_loop(tmp_path, registry, CountingLog())
    assert caught.value.field == "arms" and "listed last" in caught.value.message
    assert path.read_bytes() == before


# -- a canary started by hand, across restarts ---------------------------------------------------


def canary_share(path: Path) -> float:
    return load_experiment(path).arm("canary").share


def test_a_canary_started_by_hand_survives_a_restart(
    tmp_path: Path, registry: Registry, sql_log: SqlDecisionLog
) -> None:
    rules = bootstrap_rules(registry)
    bad = register_highest_price(registry)
    first = make_loop(tmp_path, registry, sql_log)
    event = first.start_canary(bad, reason="trying a hand-written pricer")
    assert (event.kind, event.version, event.details) == ("canary_started", bad, {"gated": False})
    assert canary_share(tmp_path / "experiment.json") == pytest.approx(0.3)
    assert registry.require_alias("pricing", "canary").version == bad
    # A new process over the same directory continues the run (nothing served yet: wait).
    clock = ManualClock(T0 + 3600)
    second = make_loop(tmp_path, registry, sql_log, clock=clock)
    run = second.state.canary
    assert run is not None and (run.version, run.production, run.started_at) == (bad, rules, T0)
    assert second.step() == []
    assert canary_share(tmp_path / "experiment.json") == pytest.approx(0.3)
    # Past the deadline with no evidence it is rolled back; production never moved.
    clock.advance(small_loop().canary.max_seconds)
    [ended] = second.step()
    assert (ended.kind, ended.version) == ("rolled_back", bad)
    assert "too little evidence" in ended.reason
    assert canary_share(tmp_path / "experiment.json") == 0.0
    assert registry.require_alias("pricing", "production").version == rules
    assert second.state.canary is None
    assert [e.kind for e in LoopFiles(tmp_path / "loop").events()] == [
        "canary_started",
        "rolled_back",
    ]


def test_a_firing_alert_rolls_the_canary_back_at_once(
    tmp_path: Path, registry: Registry, sql_log: SqlDecisionLog
) -> None:
    rules = bootstrap_rules(registry)
    bad = register_highest_price(registry)
    firing: list[str] = []
    loop = make_loop(tmp_path, registry, sql_log, alerts=lambda: list(firing))
    loop.start_canary(bad, reason="by hand")
    assert loop.step() == []
    firing.append("rlops_abandonment_high")
    [event] = loop.step()
    assert event.kind == "rolled_back" and "rlops_abandonment_high" in event.reason
    assert canary_share(tmp_path / "experiment.json") == 0.0
    assert registry.require_alias("pricing", "production").version == rules
    # The canary alias no longer names the rejected policy: it serves production's.
    assert registry.require_alias("pricing", "canary").version == rules
    assert loop.state.canary is None and loop.step() == []  # the next step does not end it


def test_moving_the_canary_alias_by_hand_ends_the_run(
    tmp_path: Path, registry: Registry, sql_log: SqlDecisionLog
) -> None:
    rules = bootstrap_rules(registry)
    bad = register_highest_price(registry)
    loop = make_loop(tmp_path, registry, sql_log)
    loop.start_canary(bad, reason="by hand")
    registry.promote("pricing", rules, alias="canary", actor="operator", reason="stop it")
    [event] = loop.step()
    assert event.kind == "canary_ended" and rules in event.reason
    assert canary_share(tmp_path / "experiment.json") == 0.0 and loop.state.canary is None


def test_starting_a_canary_refuses_bad_requests_and_changes_nothing(
    tmp_path: Path, registry: Registry, sql_log: SqlDecisionLog
) -> None:
    rules = bootstrap_rules(registry)
    bad = register_highest_price(registry)
    loop = make_loop(tmp_path, registry, sql_log)
    path = tmp_path / "experiment.json"
    before = path.read_bytes()
    cases: list[tuple[str, str, type[RlopsError], str]] = [
        ("no-such-version", "by hand", NotFoundError, "version"),
        (rules, "by hand", ValidationError, "version"),  # already production
        (bad, "  ", ValidationError, "reason"),
    ]
    for version, reason, error, field_name in cases:
        with pytest.raises(error) as caught:
            loop.start_canary(version, reason=reason)
        assert caught.value.field == field_name
    assert path.read_bytes() == before and loop.state == LoopState() and loop.events() == []
    assert registry.alias("pricing", "canary") is None
    loop.start_canary(bad, reason="by hand")
    with pytest.raises(ConflictError) as conflict:
        loop.start_canary(bad, reason="again")
    assert conflict.value.field == "version"
    assert len(loop.events()) == 1


# -- state and journal -------------------------------------------------------------------------


def test_the_journal_is_append_only_and_round_trips(tmp_path: Path) -> None:
    files = LoopFiles(tmp_path)
    assert files.events() == [] and files.load() == LoopState()
    written = [
        LoopEvent(at=T0 + i, kind=k, version=f"v{i}", reason=f"because {i}", details={"i": i})
        for i, k in enumerate(["triggered", "gate_failed", "canary_started"])
    ]
    prefixes = []
    for event in written:
        files.record(event)
        prefixes.append(files.events_path.read_bytes())
    for shorter, longer in itertools.pairwise(prefixes):
        assert longer.startswith(shorter)  # earlier lines are never rewritten
    assert files.events() == written
    assert [orjson.loads(line)["kind"] for line in prefixes[-1].splitlines()] == [
        "triggered",
        "gate_failed",
        "canary_started",
    ]


def test_the_state_survives_and_a_corrupt_one_is_refused(tmp_path: Path) -> None:
    files = LoopFiles(tmp_path)
    state = replace(LoopState(), trained_through=T0, last_run_at=T0 + 5, cycles=3)
    files.save(state)
    assert LoopFiles(tmp_path).load() == state
    files.state_path.write_bytes(b"{not json")
    with pytest.raises(ValidationError) as caught:
        files.load()
    assert caught.value.field == "state"
