"""Property tests of the join's invariants over random traffic, delays and kills.

Each generated history interleaves decision arrivals, outcome arrivals (some retried,
some for events that never existed, some long after their window) and join passes. The
same history is run twice: cleanly, and with the worker killed at random points inside
its transactions and restarted at once. After every window has closed:

- each decision has exactly one current example;
- no outcome is lost: joined + late + quarantined = received;
- duplicates never double-count: each example equals the pure join of its decision with
  its distinct outcomes;
- the killed run's examples, revisions included, equal the clean run's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlops.core import Decision, Outcome
from rlops.core.clock import ManualClock
from rlops.pipeline.join_worker import JoinWorker
from rlops.rewards import JoinConfig, join_decision, pricing_reward
from rlops.store import SqlDecisionLog, open_log
from rlops.store.log import Fault
from tests.conftest import drop_postgres_schema, new_postgres_log, require_postgres
from tests.factories import decision

WINDOW = 50.0
CONFIG = JoinConfig(
    "pricing",
    pricing_reward,
    WINDOW,
    aggregation="sum",
    signal_aggregation={"margin_rate": "max"},
    default_reward=-0.05,
)
POINTS = (
    "ingested",
    "classified",
    "examples_written",
    "decisions_marked",
    "outcomes_marked",
    "late_examples_written",
    "before_commit",
)


class KilledError(Exception):
    pass


@dataclass(frozen=True)
class History:
    events: list[tuple[float, str, Decision | Outcome]]
    joins: list[float]
    decisions: list[Decision]
    outcomes: list[Outcome]


@st.composite
def histories(draw: st.DrawFn) -> History:
    n = draw(st.integers(1, 12))
    decisions = [decision(i, ts=float(draw(st.integers(0, 100)))) for i in range(n)]
    events: list[tuple[float, str, Decision | Outcome]] = [
        (d.ts + draw(st.sampled_from([0.0, 0.0, 5.0, 80.0])), "d", d) for d in decisions
    ]
    outcomes = []
    for j in range(draw(st.integers(0, 20))):
        target = draw(st.integers(0, n))  # n means an event id nobody logged
        base = decisions[target].ts if target < n else 0.0
        ts = base + draw(st.integers(0, 120))
        signals = draw(
            st.sampled_from(
                [
                    {"converted": 1.0, "margin_rate": 0.25},
                    {"abandoned_cart": 1.0},
                    {"price_changes": 1.0},
                    {"clearance_met": 1.0},
                ]
            )
        )
        o = Outcome(f"o{j}", f"e{target:06d}", float(ts), signals)
        outcomes.append(o)
        arrival = ts + draw(st.sampled_from([0.0, 1.0, 30.0, 200.0]))
        events.append((arrival, "o", o))
        if draw(st.booleans()):  # retried delivery
            events.append((arrival + draw(st.sampled_from([0.0, 10.0, 300.0])), "o", o))
    joins = sorted(float(t) for t in draw(st.lists(st.integers(0, 500), max_size=8)))
    events.sort(key=lambda e: (e[0], e[1]))
    return History(events, joins, decisions, outcomes)


Kill = Fault | None


def replay(log: SqlDecisionLog, history: History, make_fault: Callable[[], Kill]) -> None:
    clock = ManualClock(0.0)
    worker = JoinWorker(log, [CONFIG], clock=clock, batch_size=3)
    timeline = sorted(
        [(t, 0, e) for t, _, e in history.events] + [(t, 1, None) for t in history.joins],
        key=lambda item: (item[0], item[1]),
    )
    for t, kind, event in timeline:
        clock.set(max(clock.now(), t))
        if kind == 1:
            run_until_done(worker, make_fault)
        elif isinstance(event, Decision):
            log.append_decisions([event])
        elif isinstance(event, Outcome):
            log.append_outcomes([event])
    clock.set(max(clock.now(), 10_000.0))  # every window closed
    run_until_done(worker, make_fault)


def run_until_done(worker: JoinWorker, make_fault: Callable[[], Kill]) -> None:
    """A killed worker is restarted at once, at the same clock time."""
    for _ in range(50):
        try:
            worker.run_once(fault=make_fault())
            return
        except KilledError:
            continue
    worker.run_once()


def killer(seed: int) -> Callable[[], Kill]:
    import random

    rng = random.Random(seed)

    def make() -> Kill:
        if rng.random() < 0.5:
            return None
        point, after = rng.choice(POINTS), rng.randint(0, 3)
        seen = {"n": 0}

        def fault(at: str) -> None:
            if at == point:
                seen["n"] += 1
                if seen["n"] > after:
                    raise KilledError(at)

        return fault

    return make


def check_invariants(log: SqlDecisionLog, history: History) -> None:
    current = log.examples(app="pricing")
    ids = [e.event_id for e in current]
    assert sorted(ids) == sorted(d.event_id for d in history.decisions)  # exactly one each
    stats = log.stats()
    distinct = {o.outcome_id for o in history.outcomes}
    assert stats.outcomes_received == len(distinct)
    assert stats.outcomes["new"] == 0
    assert stats.outcomes["joined"] + stats.outcomes["late"] + stats.outcomes["quarantined"] == len(
        distinct
    )
    known = {d.event_id for d in history.decisions}
    assert stats.outcomes["quarantined"] == len(
        {o.outcome_id for o in history.outcomes if o.event_id not in known}
    )
    # An outcome is joined iff it arrived by the pass that first joined its decision;
    # otherwise it is late and the decision got a later revision.
    first_arrival: dict[str, float] = {}
    for t, _, event in history.events:
        if isinstance(event, Outcome):
            first_arrival.setdefault(event.outcome_id, t)
    first = {e.event_id: e for e in log.examples(current_only=False) if e.revision == 0}
    expected_late = 0
    for event_id, example in first.items():
        mine = {o.outcome_id for o in history.outcomes if o.event_id == event_id}
        on_time = {o for o in mine if first_arrival[o] <= example.joined_at}
        assert example.n_outcomes == len(on_time)
        expected_late += len(mine - on_time)
    assert stats.outcomes["late"] == expected_late
    by_event = {d.event_id: d for d in history.decisions}
    for example in current:
        received = [o for o in history.outcomes if o.event_id == example.event_id]
        expected = join_decision(by_event[example.event_id], received, CONFIG, joined_at=0.0)
        assert example.reward == pytest.approx(expected.reward, abs=1e-12)
        assert example.signals == expected.signals
        assert example.n_outcomes == expected.n_outcomes
        assert example.defaulted == expected.defaulted


def fingerprint(log: SqlDecisionLog) -> list[tuple[object, ...]]:
    return sorted(
        (e.event_id, e.revision, e.late, e.reward, e.n_outcomes, e.defaulted, e.joined_at)
        for e in log.examples(current_only=False)
    )


SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(history=histories(), seed=st.integers(0, 2**16))
def test_join_invariants_hold_and_kills_change_nothing_sqlite(
    tmp_path_factory: pytest.TempPathFactory, history: History, seed: int
) -> None:
    root = tmp_path_factory.mktemp("prop")
    with open_log(root / "clean.db") as clean, open_log(root / "killed.db") as killed:
        replay(clean, history, lambda: None)
        replay(killed, history, killer(seed))
        check_invariants(clean, history)
        check_invariants(killed, history)
        assert fingerprint(killed) == fingerprint(clean)


@pytest.mark.postgres
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=histories(), seed=st.integers(0, 2**16))
def test_join_invariants_hold_and_kills_change_nothing_postgres(
    history: History, seed: int
) -> None:
    require_postgres()
    clean, clean_schema = new_postgres_log()
    killed, killed_schema = new_postgres_log()
    try:
        replay(clean, history, lambda: None)
        replay(killed, history, killer(seed))
        check_invariants(clean, history)
        check_invariants(killed, history)
        assert fingerprint(killed) == fingerprint(clean)
    finally:
        clean.close()
        killed.close()
        drop_postgres_schema(clean_schema)
        drop_postgres_schema(killed_schema)


def test_generated_histories_exercise_late_quarantine_and_defaults(tmp_path: Path) -> None:
    """Guard against a vacuous property: one fixed history hits every status."""
    d0, d1 = decision(0, ts=0.0), decision(1, ts=10.0)
    sale = Outcome("o0", d0.event_id, 5.0, {"converted": 1.0, "margin_rate": 0.25})
    late = Outcome("o1", d0.event_id, 70.0, {"clearance_met": 1.0})
    stray = Outcome("o2", "e000009", 5.0, {"converted": 1.0})
    history = History(
        events=[
            (0.0, "d", d0),
            (5.0, "o", sale),
            (5.0, "o", sale),
            (6.0, "o", stray),
            (10.0, "d", d1),
            (300.0, "o", late),
        ],
        joins=[100.0],
        decisions=[d0, d1],
        outcomes=[sale, late, stray],
    )
    with open_log(tmp_path / "x.db") as log:
        replay(log, history, lambda: None)
        check_invariants(log, history)
        stats = log.stats()
        assert stats.outcomes == {"new": 0, "joined": 1, "late": 1, "quarantined": 1}
        assert stats.duplicate_outcomes == 1 and stats.examples_defaulted == 1
