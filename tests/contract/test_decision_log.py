"""The decision-log contract: every backend (SQLite, PostgreSQL) must pass all of it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rlops.core import Decision, Outcome, ValidationError
from rlops.core.errors import IntegrityError
from rlops.rewards import JoinConfig, pricing_reward, pricing_spec
from rlops.rewards.spec import RewardFunction
from rlops.store import SqlDecisionLog, open_log
from rlops.store.codec import action_set_key
from tests.factories import ACTIONS, decision, outcome

CONFIG = JoinConfig("pricing", pricing_reward, window_seconds=100.0, default_reward=-0.1)


def test_append_is_batched_idempotent_and_counted(log: SqlDecisionLog) -> None:
    batch = [decision(i) for i in range(50)]
    assert log.append_decisions(batch).inserted == 50
    again = log.append_decisions([*batch[:10], decision(50)])
    assert (again.inserted, again.duplicates) == (1, 10)
    assert log.count_decisions() == 51
    outs = [outcome(i, i) for i in range(20)]
    assert log.append_outcomes(outs).inserted == 20
    assert log.append_outcomes(outs[:5]).duplicates == 5
    stats = log.stats()
    assert (stats.decisions, stats.duplicate_decisions) == (51, 10)
    assert (stats.outcomes_received, stats.duplicate_outcomes) == (20, 5)


def test_reads_by_time_range_and_app_round_trip_records(log: SqlDecisionLog) -> None:
    batch = [decision(i) for i in range(30)] + [decision(100, app="advisor")]
    log.append_decisions(batch)
    got = log.decisions(start=1005.0, end=1010.0)
    assert [d.event_id for d in got] == [f"e{i:06d}" for i in range(5, 10)]
    assert got == batch[5:10]
    assert log.count_decisions(start=1005.0, end=1010.0) == 5
    assert log.decisions(app="advisor") == [batch[-1]]
    assert list(log.iter_decisions(page=7)) == batch
    assert log.decisions(limit=3) == batch[:3]
    log.append_outcomes([outcome(i, i) for i in range(5)])
    assert log.count_outcomes(start=1002.0, end=1004.0) == 2
    assert log.outcomes(event_id="e000003") == [outcome(3, 3)]
    canary = replace(decision(200), arm="canary", policy_version="v2")
    log.append_decisions([canary])
    assert log.count_decisions(arm="canary") == 1
    assert log.count_decisions(arm="canary", policy_version="v1") == 0
    assert log.count_decisions(arm="control", policy_version="v1", app="pricing") == 30


@pytest.mark.parametrize(
    "bad",
    [
        ["not a decision"],
        [decision(1), {"event_id": "x"}],
        "e1",
    ],
)
def test_bad_batches_raise_and_write_nothing(log: SqlDecisionLog, bad: Any) -> None:
    with pytest.raises(ValidationError):
        log.append_decisions(bad)
    with pytest.raises(ValidationError):
        log.append_outcomes(bad)
    assert log.count_decisions() == 0 and log.count_outcomes() == 0


def test_join_scores_closed_windows_and_defaults_empty_ones(log: SqlDecisionLog) -> None:
    log.append_decisions([decision(i) for i in range(10)])
    log.append_outcomes(
        [
            outcome(1, 1, converted=1, margin_rate=0.3),
            outcome(2, 1, abandoned_cart=1),
            outcome(3, 2, converted=1, margin_rate=0.5),
        ]
    )
    early = log.join_step(CONFIG, now=1000.0 + 5 + 99.9)  # e0..e5 windows still open
    assert early.joined == 5  # e0..e4: ts + 100 <= 1104.9
    log.join_step(CONFIG, now=2000.0)
    examples = {e.event_id: e for e in log.examples(app="pricing")}
    assert len(examples) == 10
    assert examples["e000001"].reward == pytest.approx(0.3 - 0.5)
    assert examples["e000001"].components == pytest.approx(
        {"conversion_margin": 0.3, "abandonment": -0.5, "flicker": 0.0, "clearance_bonus": 0.0}
    )
    assert examples["e000002"].reward == pytest.approx(0.5)
    assert examples["e000000"].defaulted and examples["e000000"].reward == -0.1
    assert log.stats().outcomes["joined"] == 3
    assert log.count_examples(app="pricing", since=1500.0) == 5


def test_quarantine_keeps_unknown_outcomes_and_releases_them(log: SqlDecisionLog) -> None:
    stray = outcome(1, 7, converted=1, margin_rate=0.2)
    log.append_outcomes([stray])
    assert log.join_step(CONFIG, now=0.0).quarantined == 1
    assert log.outcome_status(stray.outcome_id) == "quarantined"
    assert log.outcomes(status="quarantined") == [stray]
    log.append_decisions([decision(7)])  # the decision turns up after all
    report = log.join_step(CONFIG, now=5000.0)
    assert report.released == 1 and report.joined == 1
    assert log.outcome_status(stray.outcome_id) == "joined"
    assert log.examples()[0].reward == pytest.approx(0.2)


def test_late_outcome_gives_a_new_revision(log: SqlDecisionLog) -> None:
    log.append_decisions([decision(1)])
    log.append_outcomes([outcome(1, 1, converted=1, margin_rate=0.3)])
    log.join_step(CONFIG, now=5000.0)
    log.append_outcomes([outcome(2, 1, ts=4000.0, clearance_met=1)])
    report = log.join_step(CONFIG, now=6000.0)
    assert (report.late_examples, report.late_outcomes) == (1, 1)
    current = log.examples()
    assert len(current) == 1
    assert current[0].revision == 1 and current[0].late
    assert current[0].reward == pytest.approx(1.3)
    history = log.examples(current_only=False)
    assert [e.revision for e in history] == [0, 1]
    stats = log.stats()
    assert stats.outcomes["late"] == 1 and stats.examples_late == 1
    assert log.outcome_status("o000002") == "late"


def test_rescore_adds_a_version_and_keeps_the_old(log: SqlDecisionLog) -> None:
    log.append_decisions([decision(i) for i in range(4)])
    log.append_outcomes(
        [outcome(i, i, converted=1, margin_rate=0.3, price_changes=1) for i in range(3)]
    )
    log.join_step(CONFIG, now=9999.0)
    new = RewardFunction(pricing_spec(version="2", flicker_penalty=0.3))
    assert log.rescore(app="pricing", source_spec=pricing_reward.hash, reward=new) == 4
    assert log.rescore(app="pricing", source_spec=pricing_reward.hash, reward=new) == 0
    old = log.examples(reward_spec=pricing_reward.hash)
    fresh = log.examples(reward_spec=new.hash)
    assert [e.reward for e in old][:3] == pytest.approx([0.28] * 3)
    assert [e.reward for e in fresh][:3] == pytest.approx([0.0] * 3)
    assert log.stats().reward_specs == {pricing_reward.hash: 4, new.hash: 4}
    with pytest.raises(ValidationError):
        log.rescore(app="pricing", source_spec=new.hash, reward=new)


def test_export_jsonl_round_trips(log: SqlDecisionLog, tmp_path: Path) -> None:
    batch = [decision(i) for i in range(12)]
    log.append_decisions(batch)
    log.append_outcomes([outcome(1, 1)])
    path = tmp_path / "decisions.jsonl"
    assert log.export_jsonl(path, kind="decisions") == 12
    assert [Decision.from_json(json.loads(line)) for line in path.read_text().splitlines()] == batch
    assert log.export_jsonl(tmp_path / "o.jsonl", kind="outcomes") == 1
    assert Outcome.from_json(json.loads((tmp_path / "o.jsonl").read_text())) == outcome(1, 1)


def test_join_fault_rolls_back_the_whole_step(log: SqlDecisionLog) -> None:
    log.append_decisions([decision(i) for i in range(5)])
    log.append_outcomes([outcome(i, i) for i in range(5)])

    def boom(point: str) -> None:
        if point == "outcomes_marked":
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        log.join_step(CONFIG, now=9999.0, fault=boom)
    stats = log.stats()
    assert stats.examples == 0 and stats.decisions_joined == 0 and stats.outcomes["new"] == 5
    log.join_step(CONFIG, now=9999.0)
    assert log.stats().examples == 5 and log.stats().outcomes["joined"] == 5


def test_extreme_floats_round_trip_and_join(log: SqlDecisionLog) -> None:
    d = Decision(
        "e1",
        1.0,
        "pricing",
        "u",
        "control",
        "v1",
        {"big": 1e20, "neg_zero": -0.0, "tiny": 1e-320, "huge_int": 2**62},
        ("a", "b"),
        "a",
        0.5,
    )
    log.append_decisions([d])
    got = log.decisions()[0]
    assert got == d
    assert isinstance(got.features["big"], float) and str(got.features["neg_zero"]) == "-0.0"
    log.append_outcomes([Outcome("o1", "e1", 2.0, {"converted": 1, "margin_rate": 1e300})])
    log.join_step(CONFIG, now=1e6)
    assert log.examples()[0].features == d.features


def test_an_unscorable_outcome_never_stalls_the_join(log: SqlDecisionLog) -> None:
    """0/0 in a ratio, an overflowing sum, an infinite product: defaulted, not stuck."""
    from rlops.apps.defaults import advisor_join_config

    config = advisor_join_config(window_days=1.0)
    log.append_decisions([decision(i, app="advisor") for i in range(4)])
    log.append_outcomes(
        [
            Outcome("z", "e000000", 1.0, {"portfolio_return": 0.1, "volatility": -1e-8}),
            Outcome("big", "e000001", 1.0, {"portfolio_return": 1e308, "volatility": 1e-300}),
            Outcome(
                "ok",
                "e000002",
                1.0,
                {
                    "portfolio_return": 0.02,
                    "volatility": 0.01,
                    "max_drawdown": 0.0,
                    "engagement_score": 0.0,
                },
            ),
        ]
    )
    report = log.join_step(config, now=1e7)
    assert report.joined == 4
    by_id = {e.event_id: e for e in log.examples()}
    assert by_id["e000000"].defaulted and by_id["e000000"].n_outcomes == 1
    assert by_id["e000001"].defaulted and by_id["e000001"].reward == 0.0
    assert by_id["e000002"].reward == pytest.approx(0.02 / (0.01 + 1e-8))


def test_rescore_then_late_outcome_keeps_one_current_example(log: SqlDecisionLog) -> None:
    log.append_decisions([decision(1)])
    log.append_outcomes([outcome(1, 1, converted=1, margin_rate=0.1)])
    log.join_step(CONFIG, now=5000.0)
    new = RewardFunction(pricing_spec(version="2", clearance_bonus=2.0))
    log.rescore(app="pricing", source_spec=pricing_reward.hash, reward=new)
    log.append_outcomes([outcome(2, 1, ts=4000.0, clearance_met=1)])
    log.join_step(CONFIG, now=6000.0)
    assert log.rescore(app="pricing", source_spec=pricing_reward.hash, reward=new) == 1
    current = log.examples(reward_spec=new.hash)
    assert [e.revision for e in current] == [1]
    assert current[0].reward == pytest.approx(2.1)
    assert log.count_examples(reward_spec=new.hash) == 1


@pytest.mark.parametrize("now", [float("inf"), float("nan"), "later", None])
def test_join_step_refuses_a_non_finite_now(log: SqlDecisionLog, now: Any) -> None:
    log.append_decisions([decision(1)])
    with pytest.raises(ValidationError, match="now"):
        log.join_step(CONFIG, now=now)
    assert log.stats().examples == 0


def _with_actions(d: Decision, actions: tuple[str, ...]) -> Decision:
    return Decision(**{**d.to_json(), "action_ids": actions})


def test_large_batches_keep_order_duplicates_and_each_action_list(log: SqlDecisionLog) -> None:
    lists = [ACTIONS, ("c", "b", "a"), ("a", "b", "c", "d")]
    batch = [_with_actions(decision(i), lists[i % 3]) for i in range(257)]
    # Repeats inside the batch, across the insert's chunks, and of a committed decision.
    log.append_decisions(batch[:3])
    again = [*batch[:150], batch[120], *batch[150:], batch[2]]
    result = log.append_decisions(again)
    assert (result.inserted, result.duplicates) == (254, 5)
    assert list(log.iter_decisions(page=100)) == batch
    with open_log(log.url) as fresh:  # nothing cached: keys resolve from the database
        assert fresh.decisions() == batch
        assert [d.action_ids for d in fresh.decisions(limit=3)] == lists
        assert fresh.append_decisions([decision(999)]).inserted == 1
    with log._engine.read() as tx:
        assert tx.query("SELECT COUNT(*) FROM action_sets")[0][0] == 3


def test_an_action_list_key_held_for_another_list_is_refused(log: SqlDecisionLog) -> None:
    with log._engine.write() as tx:
        tx.execute(
            "INSERT INTO action_sets (id, ids) VALUES (?, ?)",
            (action_set_key(ACTIONS), '["x","y"]'),
        )
    with pytest.raises(IntegrityError, match="action set"):
        log.append_decisions([decision(1)])
    assert log.count_decisions() == 0


def test_a_decision_whose_action_list_is_gone_fails_loudly(log: SqlDecisionLog) -> None:
    log.append_decisions([decision(1)])
    with log._engine.write() as tx:
        tx.execute("DELETE FROM action_sets")
    with open_log(log.url) as fresh, pytest.raises(IntegrityError, match="unknown action"):
        fresh.decisions()


def test_examples_joined_since_follow_the_join_in_order(log: SqlDecisionLog) -> None:
    """The query an online learner follows the join with: by join time, not decision time."""
    log.append_decisions([decision(i) for i in range(6)])
    log.append_outcomes([outcome(i, i, converted=1, margin_rate=0.1 * i) for i in range(6)])
    log.join_step(CONFIG, now=1103.5)  # e0..e3 due (ts + 100 <= now)
    log.join_step(CONFIG, now=2000.0)  # e4, e5
    first = log.examples_joined(since=0.0, app="pricing")
    assert [(e.event_id, e.joined_at) for e in first] == [
        *((f"e{i:06d}", 1103.5) for i in range(4)),
        ("e000004", 2000.0),
        ("e000005", 2000.0),
    ]
    assert [e.event_id for e in log.examples_joined(since=2000.0)] == ["e000004", "e000005"]
    assert log.examples_joined(since=2000.5) == []
    assert log.examples_joined(since=0.0, app="advisor") == []
    assert log.examples_joined(since=0.0, reward_spec="other") == []
    # A late outcome: the revision is joined later; current_only hides the replaced one.
    log.append_outcomes([outcome(9, 1, ts=1500.0, clearance_met=1)])
    log.join_step(CONFIG, now=3000.0)
    late = log.examples_joined(since=2500.0)
    assert [(e.event_id, e.revision) for e in late] == [("e000001", 1)]
    assert late[0].reward == pytest.approx(1.1)
    assert [e.event_id for e in log.examples_joined(since=0.0)].count("e000001") == 1
    history = log.examples_joined(since=0.0, current_only=False, event_ids=["e000001"])
    assert [(e.revision, e.joined_at) for e in history] == [(0, 1103.5), (1, 3000.0)]
    assert history[0].reward == pytest.approx(0.1)
    assert log.examples_joined(since=0.0, event_ids=[]) == []
    with pytest.raises(ValidationError) as info:
        log.examples_joined(since=float("nan"))
    assert info.value.field == "since"


def test_a_join_prepared_before_a_concurrent_change_is_redone_under_the_lock(
    log: SqlDecisionLog,
) -> None:
    """Examples are scored from a read snapshot outside the write lock; whatever changed
    between the snapshot and the lock (a new outcome, another worker's join) must win."""
    log.append_decisions([decision(i) for i in range(4)])
    log.append_outcomes([outcome(0, 0)])
    other = open_log(log.url)
    join = log._join  # the log's join steps (rlops.store.sql_join)
    prepare = join._prepare_due

    def racing_outcome(config: JoinConfig, now: float, batch_size: int) -> Any:
        prepared = prepare(config, now, batch_size)
        other.append_outcomes([outcome(1, 1, converted=1.0, margin_rate=0.5)])
        return prepared

    join._prepare_due = racing_outcome  # type: ignore[method-assign]
    report = log.join_step(CONFIG, now=10_000.0)
    assert report.joined == 4 and report.late_examples == 0
    by_id = {e.event_id: e for e in log.examples()}
    assert by_id["e000001"].n_outcomes == 1 and by_id["e000001"].reward == 0.5
    assert log.stats().outcomes["new"] == 0

    log.append_decisions([decision(i) for i in range(4, 8)])

    def racing_worker(config: JoinConfig, now: float, batch_size: int) -> Any:
        prepared = prepare(config, now, batch_size)
        # Another worker joins the same decisions first. On SQLite joiners take turns, so
        # only a joiner that skips the turn could; it stands in for PostgreSQL's case.
        other._join._step(config, now, batch_size, lambda point: None)
        return prepared

    join._prepare_due = racing_worker  # type: ignore[method-assign]
    assert log.join_step(CONFIG, now=20_000.0).joined == 0
    examples = log.examples()
    assert len(examples) == 8 and len({e.event_id for e in examples}) == 8
    other.close()
