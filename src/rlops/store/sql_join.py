"""The delayed-reward join over the SQL log's tables, one atomic step at a time.

A step first ingests (under the ingest lock): decisions appended since the cursor go to
``pending``, and the outcomes committed so far are marked as arrived. Then, under the
join lock, one transaction: quarantined outcomes whose decision turned up are released;
the outcomes that arrived since the last step are classified once (``quarantined`` with
no decision; their decision put in ``rejoin`` if it was already joined); up to
``batch_size`` decisions whose window has closed are joined into examples (scored from a
read snapshot before the lock and checked under it, or scored under it); and up to
``batch_size`` decisions in ``rejoin`` are re-emitted as late revisions. A kill at any
point commits a step or leaves no trace of it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rlops.core.errors import ValidationError
from rlops.core.records import Decision, Outcome
from rlops.rewards.join import JoinConfig, join_decision, score_outcomes
from rlops.store.codec import (
    DECISION_COLUMNS,
    EXAMPLE_COLUMNS,
    decision_from_row,
    example_row,
    joined_example_row,
    outcome_from_row,
)
from rlops.store.engine import Engine, Tx
from rlops.store.log import Fault, JoinStepReport

_DECISION_SELECT = "SELECT " + ", ".join(DECISION_COLUMNS) + " FROM decisions"
_OUTCOME_SELECT = "SELECT outcome_id, event_id, ts, signals FROM outcomes"
_ACTION_SET = DECISION_COLUMNS.index("action_set")
_DEFAULTED = EXAMPLE_COLUMNS.index("defaulted")
# The action sets decision rows (as DECISION_COLUMNS) name, by key: the log's cache.
ActionSets = Callable[[Tx, Sequence[Sequence[Any]]], Mapping[int, tuple[str, ...]]]


def _no_fault(point: str) -> None:
    """The default fault hook: nothing happens at any point."""


@dataclass(frozen=True, slots=True)
class _Due:
    """Due decisions' examples, ready to write, and the outcomes they consumed."""

    event_ids: list[str]
    outcomes: list[Outcome]
    example_rows: list[tuple[Any, ...]]
    defaulted: int
    outcome_seq: int = -1  # the newest outcome when it was read (-1: read under the lock)


class SqlJoin:
    """The join steps of one :class:`~rlops.store.sql_log.SqlDecisionLog`."""

    def __init__(self, engine: Engine, action_sets: ActionSets) -> None:
        self._engine = engine
        self._action_sets = action_sets

    def _decode(self, tx: Tx, rows: Sequence[Sequence[Any]]) -> list[Decision]:
        sets = self._action_sets(tx, rows)
        return [decision_from_row(r, sets) for r in rows]

    def step(
        self,
        config: JoinConfig,
        *,
        now: float,
        batch_size: int = 1000,
        fault: Fault | None = None,
        wait: bool = True,
    ) -> JoinStepReport:
        """One atomic step of the delayed-reward join for ``config.app``.

        Releases quarantined outcomes whose decision has arrived, quarantines new ones
        with no decision, joins up to ``batch_size`` decisions whose window has closed at
        ``now``, and re-emits up to ``batch_size`` examples that received late outcomes.
        With ``wait=False`` a step that would queue behind another process's join is not
        taken (``skipped=1``): that worker appends instead, and the joiner catches up.
        """
        if batch_size < 1:
            raise ValidationError("batch_size must be >= 1", field="batch_size")
        if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
            raise ValidationError(f"now must be a finite time, got {now!r}", field="now")
        with self._engine.join_turn(wait) as turn:
            if not turn:
                return JoinStepReport(skipped=1)
            return self._step(config, now, batch_size, fault or _no_fault)

    def _step(self, config: JoinConfig, now: float, batch_size: int, hit: Fault) -> JoinStepReport:
        engine = self._engine
        with engine.write() as tx:
            engine.lock_ingest(tx)
            self._ingest(tx)
            hit("ingested")
        prepared = self._prepare_due(config, now, batch_size)
        with engine.write() as tx:
            engine.lock_join(tx)
            released = tx.execute(
                # status <> 'joined' lets SQLite use the partial index outcomes_open (else: a scan
                # of every outcome, each step).
                "UPDATE outcomes SET status = 'new' WHERE status <> 'joined'"
                " AND status = 'quarantined' AND EXISTS"
                " (SELECT 1 FROM decisions d WHERE d.event_id = outcomes.event_id)"
            )
            quarantined = self._classify(tx)
            hit("classified")
            joined, defaulted = self._join_due(tx, config, now, batch_size, hit, prepared, released)
            late_examples, late_outcomes = self._rejoin_late(tx, config, now, batch_size, hit)
            tx.execute(
                "INSERT INTO join_progress (app, steps, examples, last_step_at) VALUES (?, 1, ?, ?)"
                " ON CONFLICT (app) DO UPDATE SET steps = join_progress.steps + 1,"
                " examples = join_progress.examples + excluded.examples,"
                " last_step_at = excluded.last_step_at",
                (config.app, joined + late_examples, now),
            )
            hit("before_commit")
        return JoinStepReport(
            joined=joined,
            defaulted=defaulted,
            late_examples=late_examples,
            late_outcomes=late_outcomes,
            quarantined=quarantined,
            released=released,
        )

    @staticmethod
    def _ingest(tx: Tx) -> None:
        """Move decisions appended since the cursor into ``pending`` (waiting to be joined).

        Done here rather than on append so the append path keeps a single index.
        """
        SqlJoin._ingest_outcomes(tx)
        cursor = int(tx.query("SELECT seq FROM join_cursor")[0][0])
        top = tx.query("SELECT MAX(seq) FROM decisions")[0][0]
        if top is None or int(top) <= cursor:
            return
        tx.execute(
            "INSERT INTO pending (event_id, app, ts) SELECT event_id, app, ts FROM decisions"
            " WHERE seq > ? AND seq <= ? ON CONFLICT DO NOTHING",
            (cursor, int(top)),
        )
        tx.execute("UPDATE join_cursor SET seq = ?", (int(top),))

    @staticmethod
    def _ingest_outcomes(tx: Tx) -> None:
        """Mark every outcome committed so far as arrived, for :meth:`_classify`."""
        top = tx.query("SELECT MAX(seq) FROM outcomes")[0][0]
        if top is not None:
            tx.execute("UPDATE outcome_cursor SET ingested = ?", (int(top),))

    @staticmethod
    def _classify(tx: Tx) -> int:
        """Sort the outcomes that arrived since the last step; returns how many were
        quarantined.

        Only new arrivals are looked at, so a step costs what arrived, not every outcome
        still waiting for its window. An outcome whose decision is unknown is quarantined
        (released when the decision comes). One whose decision was already joined puts
        that decision in ``rejoin`` for a late revision. One whose decision is pending, or
        appended but not yet ingested, waits for the decision's window as it is.
        """
        low, high = (int(v) for v in tx.query("SELECT classified, ingested FROM outcome_cursor")[0])
        if high <= low:
            return 0
        quarantined = tx.execute(
            "UPDATE outcomes SET status = 'quarantined' WHERE seq > ? AND seq <= ?"
            " AND status = 'new' AND NOT EXISTS"
            " (SELECT 1 FROM decisions d WHERE d.event_id = outcomes.event_id)",
            (low, high),
        )
        tx.execute(
            "INSERT INTO rejoin (event_id) SELECT DISTINCT o.event_id FROM outcomes o"
            " JOIN decisions d ON d.event_id = o.event_id"
            " WHERE o.seq > ? AND o.seq <= ? AND o.status = 'new'"
            " AND d.seq <= (SELECT seq FROM join_cursor)"
            " AND NOT EXISTS (SELECT 1 FROM pending p WHERE p.event_id = o.event_id)"
            " ON CONFLICT DO NOTHING",
            (low, high),
        )
        tx.execute("UPDATE outcome_cursor SET classified = ?", (high,))
        return quarantined

    def _new_outcomes_of(self, tx: Tx, event_ids: Sequence[str]) -> dict[str, list[Outcome]]:
        predicate, params = self._engine.any_of("event_id", event_ids)
        rows = tx.query(_OUTCOME_SELECT + f" WHERE status = 'new' AND {predicate}", params)
        grouped: dict[str, list[Outcome]] = defaultdict(list)
        for row in rows:
            grouped[row[1]].append(outcome_from_row(row))
        return grouped

    def _mark_outcomes(self, tx: Tx, outcomes: Sequence[Outcome], status: str) -> None:
        if outcomes:
            predicate, params = self._engine.any_of("outcome_id", [o.outcome_id for o in outcomes])
            tx.execute(f"UPDATE outcomes SET status = ? WHERE {predicate}", [status, *params])

    def _due_rows(self, tx: Tx, config: JoinConfig, now: float, batch_size: int) -> list[Any]:
        return tx.query(
            "SELECT "
            + ", ".join(f"d.{c}" for c in DECISION_COLUMNS)
            + " FROM pending p JOIN decisions d ON d.event_id = p.event_id"
            f" WHERE p.app = ? AND p.ts <= ? ORDER BY p.ts, p.event_id LIMIT {int(batch_size)}",
            (config.app, now - config.window_seconds),
        )

    def _compute_due(self, tx: Tx, config: JoinConfig, now: float, batch_size: int) -> _Due | None:
        rows = self._due_rows(tx, config, now, batch_size)
        if not rows:
            return None
        sets = self._action_sets(tx, rows)
        event_ids = [row[0] for row in rows]
        outcomes = self._new_outcomes_of(tx, event_ids)
        spec = config.reward.hash
        example_rows = [
            joined_example_row(
                row,
                sets[row[_ACTION_SET]],
                score_outcomes(float(row[1]), outcomes.get(row[0], ()), config),
                reward_spec=spec,
                joined_at=now,
            )
            for row in rows
        ]
        return _Due(
            event_ids,
            [o for group in outcomes.values() for o in group],
            example_rows,
            sum(r[_DEFAULTED] for r in example_rows),
        )

    def _prepare_due(self, config: JoinConfig, now: float, batch_size: int) -> _Due | None:
        """The next due decisions' examples, computed from a read snapshot.

        Reading, decoding and scoring take most of a step; done here, outside the write
        lock, other processes (a second join worker, the server) append meanwhile. Under
        the lock :meth:`_still_due` checks that nothing it read has changed since.
        """
        with self._engine.read() as tx:
            seq = tx.query("SELECT COALESCE(MAX(seq), 0) FROM outcomes")[0][0]
            due = self._compute_due(tx, config, now, batch_size)
        return None if due is None else replace(due, outcome_seq=int(seq))

    def _still_due(self, tx: Tx, due: _Due, released: int) -> bool:
        """Every decision still pending, and no outcome of theirs became new since the
        snapshot: none appended after it (a range of the primary key, so cheap) and no
        quarantined one released in this step."""
        if released:
            return False
        predicate, params = self._engine.any_of("event_id", due.event_ids)
        pending = tx.query(f"SELECT COUNT(*) FROM pending WHERE {predicate}", params)[0][0]
        if int(pending) != len(due.event_ids):
            return False
        arrived = tx.query(
            f"SELECT 1 FROM outcomes WHERE seq > ? AND {predicate} LIMIT 1",
            [due.outcome_seq, *params],
        )
        return not arrived

    def _join_due(
        self,
        tx: Tx,
        config: JoinConfig,
        now: float,
        batch_size: int,
        hit: Fault,
        prepared: _Due | None,
        released: int,
    ) -> tuple[int, int]:
        fresh = prepared is not None and self._still_due(tx, prepared, released)
        due = prepared if fresh else None
        if due is None:  # nothing prepared, or another writer got there first: redo here
            due = self._compute_due(tx, config, now, batch_size)
            if due is None:
                return 0, 0
        self._engine.insert_ignore(tx, "examples", EXAMPLE_COLUMNS, due.example_rows)
        hit("examples_written")
        predicate, params = self._engine.any_of("event_id", due.event_ids)
        tx.execute(f"DELETE FROM pending WHERE {predicate}", params)
        hit("decisions_marked")
        self._mark_outcomes(tx, due.outcomes, "joined")
        hit("outcomes_marked")
        return len(due.event_ids), due.defaulted

    def _rejoin_late(
        self, tx: Tx, config: JoinConfig, now: float, batch_size: int, hit: Fault
    ) -> tuple[int, int]:
        rows = tx.query(
            # Driven from rejoin (usually empty): a join would let the planner scan decisions.
            "SELECT r.event_id FROM rejoin r WHERE EXISTS (SELECT 1 FROM decisions d"
            " WHERE d.event_id = r.event_id AND d.app = ?)"
            f" ORDER BY r.event_id LIMIT {int(batch_size)}",
            (config.app,),
        )
        if not rows:
            return 0, 0
        ids = [r[0] for r in rows]
        predicate, params = self._engine.any_of("event_id", ids)
        tx.execute(f"DELETE FROM rejoin WHERE {predicate}", params)
        decisions = self._decode(tx, tx.query(_DECISION_SELECT + f" WHERE {predicate}", params))
        # One read gives every outcome to score and, by status, the new ones to mark late:
        # two reads could disagree on an outcome committed between them.
        every: dict[str, list[Outcome]] = defaultdict(list)
        late: list[Outcome] = []
        for row in tx.query(
            "SELECT outcome_id, event_id, ts, signals, status FROM outcomes"
            f" WHERE status IN ('joined', 'late', 'new') AND {predicate}",
            params,
        ):
            received = outcome_from_row(row)
            every[row[1]].append(received)
            if row[4] == "new":
                late.append(received)
        revisions = dict(
            tx.query(
                "SELECT event_id, MAX(revision) FROM examples"
                f" WHERE reward_spec = ? AND {predicate} GROUP BY event_id",
                [config.reward.hash, *params],
            )
        )
        examples = [
            join_decision(
                d,
                every[d.event_id],
                config,
                joined_at=now,
                revision=int(revisions[d.event_id]) + 1 if d.event_id in revisions else 0,
                late=True,
            )
            for d in decisions
        ]
        tx.execute(
            f"UPDATE examples SET is_current = 0 WHERE reward_spec = ? AND {predicate}",
            [config.reward.hash, *params],
        )
        self._engine.insert_ignore(
            tx, "examples", EXAMPLE_COLUMNS, [example_row(e) for e in examples]
        )
        hit("late_examples_written")
        self._mark_outcomes(tx, late, "late")
        return len(examples), len(late)

    # ---------------------------------------------------------------- rescoring, export
