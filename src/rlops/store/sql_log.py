"""The decision log over any SQL engine (SQLite embedded, PostgreSQL in production).

Decision lifecycle: appended (one unique index: the append path stays close to the
database's raw insert rate; each distinct ``action_ids`` list is written once, to
``action_sets``, the first time this log meets it, and rows carry its key), then
ingested by the join worker into ``pending`` by a cursor over the append sequence, then
joined (removed from ``pending``; its example written).

Outcome lifecycle: ``new`` on arrival; a join step marks each one ``quarantined`` (no
decision with its event id yet: kept, counted, released if the decision turns up),
``joined`` (included in the decision's first example) or ``late`` (arrived after the
decision was joined: the example is re-emitted as revision + 1 including it). Each join
step is one transaction that writes examples, decision flags and outcome statuses
together, so a kill at any point either commits a step or leaves no trace of it.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

import orjson

from rlops.core.errors import IntegrityError, ValidationError
from rlops.core.records import Decision, Example, Outcome
from rlops.rewards.join import JoinConfig, join_decision, rescore
from rlops.rewards.spec import RewardFunction
from rlops.store.codec import (
    ACTION_SET_COLUMNS,
    DECISION_COLUMNS,
    EXAMPLE_COLUMNS,
    OUTCOME_COLUMNS,
    action_set_row,
    decision_from_row,
    decision_rows,
    example_from_body,
    example_row,
    loads,
    outcome_from_row,
    outcome_row,
    register_action_set,
)
from rlops.store.engine import Engine, Tx
from rlops.store.log import (
    OUTCOME_STATUSES,
    AppendResult,
    Fault,
    JoinStepReport,
    LogStats,
    OutcomeStatus,
)

_DECISION_SELECT = "SELECT " + ", ".join(DECISION_COLUMNS) + " FROM decisions"
_OUTCOME_SELECT = "SELECT outcome_id, event_id, ts, signals FROM outcomes"
_ACTION_SET = itemgetter(DECISION_COLUMNS.index("action_set"))
_MAX_KNOWN_SETS = 65536


def _no_fault(point: str) -> None:
    return None


def _check_batch(records: Sequence[object], kind: type, name: str) -> None:
    if isinstance(records, str | bytes) or not isinstance(records, Sequence):
        raise ValidationError(f"{name} must be a sequence of {kind.__name__}", field=name)
    if all(map(isinstance, records, repeat(kind))):
        return
    for i, record in enumerate(records):
        if not isinstance(record, kind):
            raise ValidationError(
                f"{name}[{i}] is a {type(record).__name__}, expected {kind.__name__}",
                field=f"{name}[{i}]",
            )


def _range(column: str, start: float | None, end: float | None, params: list[Any]) -> list[str]:
    clauses = []
    if start is not None:
        clauses.append(f"{column} >= ?")
        params.append(start)
    if end is not None:
        clauses.append(f"{column} < ?")
        params.append(end)
    return clauses


def _equal(column: str, value: object, clauses: list[str], params: list[Any]) -> None:
    """Add ``column = value`` unless ``value`` is None (no filter)."""
    if value is not None:
        clauses.append(f"{column} = ?")
        params.append(value)


def _where(clauses: list[str]) -> str:
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


class SqlDecisionLog:
    """A :class:`~rlops.store.log.DecisionLog` over an :class:`Engine`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.url = engine.url
        # Action sets known to be committed in this database, by key: an append writes
        # a set only the first time this log meets it, and reads resolve keys from here.
        self._action_sets: dict[int, tuple[str, ...]] = {}

    # ---------------------------------------------------------------- appends

    def append_decisions(self, decisions: Sequence[Decision]) -> AppendResult:
        _check_batch(decisions, Decision, "decisions")
        if not decisions:
            return AppendResult(0, 0)
        rows = decision_rows(decisions)
        unseen = set(map(_ACTION_SET, rows)).difference(self._action_sets)
        new: dict[int, tuple[str, ...]] = {}
        if unseen:
            new = {
                key: d.action_ids
                for d, key in zip(decisions, map(_ACTION_SET, rows), strict=True)
                if key in unseen
            }
        with self._engine.write() as tx:
            self._engine.lock_append(tx)
            if new:
                self._store_action_sets(tx, new)
            inserted = self._engine.insert_ignore(tx, "decisions", DECISION_COLUMNS, rows)
            duplicates = len(rows) - inserted
            if duplicates:
                self._bump(tx, "duplicate_decisions", duplicates)
        if new:
            self._remember(new)  # only once committed: a rollback would have lost them
        return AppendResult(inserted, duplicates)

    def _store_action_sets(self, tx: Tx, sets: Mapping[int, tuple[str, ...]]) -> None:
        """Write each set unless stored; refuse a key the database holds for another list."""
        tx.executemany(
            f"INSERT INTO action_sets ({', '.join(ACTION_SET_COLUMNS)}) VALUES (?, ?)"
            " ON CONFLICT DO NOTHING",
            [action_set_row(key, ids) for key, ids in sets.items()],
        )
        stored = self._read_action_sets(tx, sets)
        for key, ids in sets.items():
            if stored.get(key) != ids:
                raise IntegrityError(
                    f"action set {list(ids)} has key {key}, stored for {stored.get(key)}",
                    field="action_ids",
                )

    def _read_action_sets(self, tx: Tx, keys: Collection[int]) -> dict[int, tuple[str, ...]]:
        predicate, params = self._engine.any_of("id", list(keys))
        return {
            int(key): tuple(loads(ids))
            for key, ids in tx.query(f"SELECT id, ids FROM action_sets WHERE {predicate}", params)
        }

    def _remember(self, sets: Mapping[int, tuple[str, ...]]) -> None:
        for key, ids in sets.items():
            register_action_set(key, ids)
        if len(self._action_sets) + len(sets) > _MAX_KNOWN_SETS:
            self._action_sets = dict(sets)  # a new dict: a reader may hold the old one
        else:
            self._action_sets.update(sets)

    def _decode(self, tx: Tx, rows: Sequence[Sequence[Any]]) -> list[Decision]:
        """Decision rows (as :data:`DECISION_COLUMNS`, maybe more after) back to records."""
        sets: Mapping[int, tuple[str, ...]] = self._action_sets
        unseen = set(map(_ACTION_SET, rows)).difference(sets)
        if unseen:
            found = self._read_action_sets(tx, unseen)
            if len(found) != len(unseen):
                missing = sorted(unseen.difference(found))
                raise IntegrityError(f"decisions name unknown action sets {missing}")
            sets = {**sets, **found}
            self._remember(found)
        return [decision_from_row(r, sets) for r in rows]

    def append_outcomes(self, outcomes: Sequence[Outcome]) -> AppendResult:
        _check_batch(outcomes, Outcome, "outcomes")
        if not outcomes:
            return AppendResult(0, 0)
        received_at = time.time()
        rows = [outcome_row(o, received_at) for o in outcomes]
        with self._engine.write() as tx:
            inserted = self._engine.insert_ignore(tx, "outcomes", OUTCOME_COLUMNS, rows)
            duplicates = len(rows) - inserted
            if duplicates:
                self._bump(tx, "duplicate_outcomes", duplicates)
        return AppendResult(inserted, duplicates)

    @staticmethod
    def _bump(tx: Tx, name: str, by: int) -> None:
        tx.execute("UPDATE counters SET value = value + ? WHERE name = ?", (by, name))

    # ---------------------------------------------------------------- reads

    def decisions(
        self,
        *,
        start: float | None = None,
        end: float | None = None,
        app: str | None = None,
        limit: int | None = None,
    ) -> list[Decision]:
        params: list[Any] = []
        clauses = _range("ts", start, end, params)
        _equal("app", app, clauses, params)
        sql = _DECISION_SELECT + _where(clauses) + " ORDER BY ts, seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._engine.read() as tx:
            return self._decode(tx, tx.query(sql, params))

    def iter_decisions(
        self, *, start: float | None = None, end: float | None = None, page: int = 5000
    ) -> Iterator[Decision]:
        """Every decision in append order, read in pages (bounded memory)."""
        after = 0
        while True:
            params: list[Any] = [after]
            clauses = ["seq > ?", *_range("ts", start, end, params)]
            sql = (
                "SELECT "
                + ", ".join(DECISION_COLUMNS)
                + ", seq FROM decisions"
                + _where(clauses)
                + f" ORDER BY seq LIMIT {int(page)}"
            )
            with self._engine.read() as tx:
                rows = tx.query(sql, params)
                decisions = self._decode(tx, rows)
            if not rows:
                return
            after = rows[-1][-1]
            yield from decisions

    def outcomes(
        self,
        *,
        start: float | None = None,
        end: float | None = None,
        event_id: str | None = None,
        status: OutcomeStatus | None = None,
        limit: int | None = None,
    ) -> list[Outcome]:
        params: list[Any] = []
        clauses = _range("ts", start, end, params)
        _equal("event_id", event_id, clauses, params)
        if status is not None:
            if status not in OUTCOME_STATUSES:
                raise ValidationError(f"unknown outcome status {status!r}", field="status")
            clauses.append("status = ?")
            params.append(status)
        sql = _OUTCOME_SELECT + _where(clauses) + " ORDER BY ts, seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._engine.read() as tx:
            return [outcome_from_row(r) for r in tx.query(sql, params)]

    def outcome_status(self, outcome_id: str) -> OutcomeStatus | None:
        with self._engine.read() as tx:
            rows = tx.query("SELECT status FROM outcomes WHERE outcome_id = ?", (outcome_id,))
        return rows[0][0] if rows else None

    def examples(
        self,
        *,
        app: str | None = None,
        reward_spec: str | None = None,
        current_only: bool = True,
        start: float | None = None,
        end: float | None = None,
    ) -> list[Example]:
        params: list[Any] = []
        clauses = _range("ts", start, end, params)
        _equal("app", app, clauses, params)
        _equal("reward_spec", reward_spec, clauses, params)
        if current_only:
            clauses.append("is_current = 1")
        sql = (
            "SELECT body FROM examples"
            + _where(clauses)
            + " ORDER BY ts, event_id, reward_spec, revision"
        )
        with self._engine.read() as tx:
            return [example_from_body(r[0]) for r in tx.query(sql, params)]

    def _count(self, sql: str, params: Sequence[Any]) -> int:
        with self._engine.read() as tx:
            return int(tx.query(sql, params)[0][0])

    def count_decisions(
        self, *, start: float | None = None, end: float | None = None, app: str | None = None
    ) -> int:
        params: list[Any] = []
        clauses = _range("ts", start, end, params)
        _equal("app", app, clauses, params)
        return self._count("SELECT COUNT(*) FROM decisions" + _where(clauses), params)

    def count_outcomes(self, *, start: float | None = None, end: float | None = None) -> int:
        params: list[Any] = []
        return self._count(
            "SELECT COUNT(*) FROM outcomes" + _where(_range("ts", start, end, params)), params
        )

    def oldest_unjoined_ts(self, app: str) -> float | None:
        """The earliest decision of ``app`` without its first example: pending in the join,
        or not yet ingested by any join worker (so a stopped joiner shows as lag too)."""
        with self._engine.read() as tx:
            rows = tx.query(
                "SELECT MIN(ts) FROM ("
                " SELECT MIN(ts) AS ts FROM pending WHERE app = ?"
                " UNION ALL"
                " SELECT MIN(ts) AS ts FROM decisions"
                " WHERE app = ? AND seq > (SELECT seq FROM join_cursor)"
                ") AS candidates",
                [app, app],
            )
        value = rows[0][0] if rows else None
        return None if value is None else float(value)

    def count_examples(
        self, *, app: str | None = None, reward_spec: str | None = None, since: float | None = None
    ) -> int:
        """Current examples, optionally only those joined at or after ``since``."""
        params: list[Any] = []
        clauses = ["is_current = 1", *_range("joined_at", since, None, params)]
        _equal("app", app, clauses, params)
        _equal("reward_spec", reward_spec, clauses, params)
        return self._count("SELECT COUNT(*) FROM examples" + _where(clauses), params)

    def stats(self) -> LogStats:
        with self._engine.read() as tx:
            decisions, ingested, pending = tx.query(
                "SELECT (SELECT COUNT(*) FROM decisions),"
                " (SELECT COUNT(*) FROM decisions WHERE seq <= (SELECT seq FROM join_cursor)),"
                " (SELECT COUNT(*) FROM pending)"
            )[0]
            joined = int(ingested) - int(pending)
            by_status: dict[str, int] = dict.fromkeys(OUTCOME_STATUSES, 0)
            for status, count in tx.query("SELECT status, COUNT(*) FROM outcomes GROUP BY status"):
                by_status[status] = int(count)
            counters = dict(tx.query("SELECT name, value FROM counters"))
            total, current, defaulted, late = tx.query(
                "SELECT COUNT(*), COALESCE(SUM(is_current), 0),"
                " COALESCE(SUM(CASE WHEN is_current = 1 THEN defaulted ELSE 0 END), 0),"
                " COALESCE(SUM(CASE WHEN is_current = 1 THEN late ELSE 0 END), 0)"
                " FROM examples"
            )[0]
            specs = dict(
                tx.query(
                    "SELECT reward_spec, COUNT(*) FROM examples WHERE is_current = 1"
                    " GROUP BY reward_spec"
                )
            )
        return LogStats(
            decisions=int(decisions),
            decisions_joined=int(joined),
            outcomes=by_status,
            duplicate_decisions=int(counters.get("duplicate_decisions", 0)),
            duplicate_outcomes=int(counters.get("duplicate_outcomes", 0)),
            examples=int(total),
            examples_current=int(current),
            examples_defaulted=int(defaulted),
            examples_late=int(late),
            reward_specs={str(k): int(v) for k, v in specs.items()},
        )

    # ---------------------------------------------------------------- join

    def join_step(
        self,
        config: JoinConfig,
        *,
        now: float,
        batch_size: int = 1000,
        fault: Fault | None = None,
    ) -> JoinStepReport:
        """One atomic step of the delayed-reward join for ``config.app``.

        Releases quarantined outcomes whose decision has arrived, quarantines new ones
        with no decision, joins up to ``batch_size`` decisions whose window has closed at
        ``now``, and re-emits up to ``batch_size`` examples that received late outcomes.
        """
        if batch_size < 1:
            raise ValidationError("batch_size must be >= 1", field="batch_size")
        if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
            raise ValidationError(f"now must be a finite time, got {now!r}", field="now")
        hit = fault or _no_fault
        engine = self._engine
        with engine.write() as tx:
            engine.lock_ingest(tx)
            self._ingest(tx)
            hit("ingested")
        with engine.write() as tx:
            engine.lock_join(tx)
            released = tx.execute(
                "UPDATE outcomes SET status = 'new' WHERE status = 'quarantined' AND EXISTS"
                " (SELECT 1 FROM decisions d WHERE d.event_id = outcomes.event_id)"
            )
            quarantined = tx.execute(
                "UPDATE outcomes SET status = 'quarantined' WHERE status = 'new' AND NOT EXISTS"
                " (SELECT 1 FROM decisions d WHERE d.event_id = outcomes.event_id)"
            )
            hit("classified")
            joined, defaulted = self._join_due(tx, config, now, batch_size, hit)
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

    def _join_due(
        self, tx: Tx, config: JoinConfig, now: float, batch_size: int, hit: Fault
    ) -> tuple[int, int]:
        rows = tx.query(
            "SELECT "
            + ", ".join(f"d.{c}" for c in DECISION_COLUMNS)
            + " FROM pending p JOIN decisions d ON d.event_id = p.event_id"
            f" WHERE p.app = ? AND p.ts <= ? ORDER BY p.ts, d.seq LIMIT {int(batch_size)}",
            (config.app, now - config.window_seconds),
        )
        if not rows:
            return 0, 0
        due = self._decode(tx, rows)
        ids = [d.event_id for d in due]
        outcomes = self._new_outcomes_of(tx, ids)
        examples = [
            join_decision(d, outcomes.get(d.event_id, []), config, joined_at=now) for d in due
        ]
        self._engine.insert_ignore(
            tx, "examples", EXAMPLE_COLUMNS, [example_row(e) for e in examples]
        )
        hit("examples_written")
        predicate, params = self._engine.any_of("event_id", ids)
        tx.execute(f"DELETE FROM pending WHERE {predicate}", params)
        hit("decisions_marked")
        self._mark_outcomes(tx, [o for group in outcomes.values() for o in group], "joined")
        hit("outcomes_marked")
        return len(examples), sum(e.defaulted for e in examples)

    def _rejoin_late(
        self, tx: Tx, config: JoinConfig, now: float, batch_size: int, hit: Fault
    ) -> tuple[int, int]:
        rows = tx.query(
            "SELECT DISTINCT o.event_id FROM outcomes o JOIN decisions d"
            " ON d.event_id = o.event_id WHERE o.status = 'new' AND d.app = ?"
            " AND d.seq <= (SELECT seq FROM join_cursor)"
            " AND NOT EXISTS (SELECT 1 FROM pending p WHERE p.event_id = o.event_id)"
            f" ORDER BY o.event_id LIMIT {int(batch_size)}",
            (config.app,),
        )
        if not rows:
            return 0, 0
        ids = [r[0] for r in rows]
        predicate, params = self._engine.any_of("event_id", ids)
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

    def rescore(
        self, *, app: str, source_spec: str, reward: RewardFunction, batch_size: int = 5000
    ) -> int:
        """Score the current examples of ``source_spec`` with ``reward``; returns new rows.

        The source examples stay; the new ones carry ``reward.hash``. Idempotent.
        """
        if reward.hash == source_spec:
            raise ValidationError("the new reward has the same hash as the source", field="reward")
        examples = self.examples(app=app, reward_spec=source_spec)
        inserted = 0
        for i in range(0, len(examples), batch_size):
            chunk = rescore(examples[i : i + batch_size], reward)
            with self._engine.write() as tx:
                self._engine.lock_join(tx)
                inserted += self._engine.insert_ignore(
                    tx, "examples", EXAMPLE_COLUMNS, [example_row(e) for e in chunk]
                )
                # Only the highest revision of each (event, spec) stays current.
                predicate, params = self._engine.any_of("event_id", [e.event_id for e in chunk])
                tx.execute(
                    "UPDATE examples SET is_current = CASE WHEN revision = (SELECT MAX(e2.revision)"
                    " FROM examples e2 WHERE e2.event_id = examples.event_id"
                    " AND e2.reward_spec = examples.reward_spec) THEN 1 ELSE 0 END"
                    f" WHERE reward_spec = ? AND {predicate}",
                    [reward.hash, *params],
                )
        return inserted

    def export_jsonl(
        self,
        path: Path,
        *,
        kind: Literal["decisions", "outcomes", "examples"],
        start: float | None = None,
        end: float | None = None,
    ) -> int:
        """Write records as JSON lines (``Record.from_json`` reads each line back)."""
        records: Iterator[Decision] | list[Outcome] | list[Example]
        if kind == "decisions":
            records = self.iter_decisions(start=start, end=end)
        elif kind == "outcomes":
            records = self.outcomes(start=start, end=end)
        elif kind == "examples":
            records = self.examples(start=start, end=end, current_only=False)
        else:
            raise ValidationError(f"unknown export kind {kind!r}", field="kind")
        count = 0
        tmp = Path(path).with_suffix(Path(path).suffix + ".tmp")
        with open(tmp, "wb") as fh:
            for record in records:
                fh.write(orjson.dumps(record.to_json()) + b"\n")
                count += 1
        tmp.replace(path)
        return count

    def close(self) -> None:
        self._engine.close()

    def __enter__(self) -> SqlDecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
