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
from collections.abc import Collection, Iterator, Mapping, Sequence
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

import orjson

from rlops.core.errors import IntegrityError, ValidationError
from rlops.core.records import Decision, Example, Outcome
from rlops.rewards.join import JoinConfig, rescore
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
from rlops.store.sql_join import SqlJoin

_DECISION_SELECT = "SELECT " + ", ".join(DECISION_COLUMNS) + " FROM decisions"
_OUTCOME_SELECT = "SELECT outcome_id, event_id, ts, signals FROM outcomes"
_ACTION_SET = itemgetter(DECISION_COLUMNS.index("action_set"))
_MAX_KNOWN_SETS = 65536


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
        self._join = SqlJoin(engine, self._action_sets_of)

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
        sets = self._action_sets_of(tx, rows)
        return [decision_from_row(r, sets) for r in rows]

    def _action_sets_of(
        self, tx: Tx, rows: Sequence[Sequence[Any]]
    ) -> Mapping[int, tuple[str, ...]]:
        """Every action set the decision ``rows`` name, by key (cached; read if new)."""
        sets: Mapping[int, tuple[str, ...]] = self._action_sets
        unseen = set(map(_ACTION_SET, rows)).difference(sets)
        if unseen:
            found = self._read_action_sets(tx, unseen)
            if len(found) != len(unseen):
                missing = sorted(unseen.difference(found))
                raise IntegrityError(f"decisions name unknown action sets {missing}")
            sets = {**sets, **found}
            self._remember(found)
        return sets

    def append_outcomes(self, outcomes: Sequence[Outcome]) -> AppendResult:
        _check_batch(outcomes, Outcome, "outcomes")
        if not outcomes:
            return AppendResult(0, 0)
        received_at = time.time()
        rows = [outcome_row(o, received_at) for o in outcomes]
        with self._engine.write() as tx:
            self._engine.lock_append(tx)  # outcome sequence numbers commit in order too
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

    def examples_joined(
        self,
        *,
        since: float,
        app: str | None = None,
        reward_spec: str | None = None,
        current_only: bool = True,
        event_ids: Sequence[str] | None = None,
    ) -> list[Example]:
        """Examples joined at or after ``since`` (join time, not decision time), in join order
        ``(joined_at, event_id, reward_spec, revision)``: what a consumer that follows the
        join (an online learner) has not seen yet. ``since`` is inclusive because one join
        step stamps all its examples with the same ``joined_at``: a consumer keeps the keys
        it took at its cursor's time and skips them. ``event_ids`` narrows to those events
        (with ``current_only=False``, their revision history).
        """
        if isinstance(since, bool) or not isinstance(since, int | float) or math.isnan(since):
            raise ValidationError(f"since must be a time, got {since!r}", field="since")
        params: list[Any] = []
        clauses = _range("joined_at", since, None, params)
        _equal("app", app, clauses, params)
        _equal("reward_spec", reward_spec, clauses, params)
        if current_only:
            clauses.append("is_current = 1")
        if event_ids is not None:
            if not event_ids:
                return []
            predicate, ids = self._engine.any_of("event_id", list(event_ids))
            clauses.append(predicate)
            params.extend(ids)
        sql = (
            "SELECT body FROM examples"
            + _where(clauses)
            + " ORDER BY joined_at, event_id, reward_spec, revision"
        )
        with self._engine.read() as tx:
            return [example_from_body(r[0]) for r in tx.query(sql, params)]

    def _count(self, sql: str, params: Sequence[Any]) -> int:
        with self._engine.read() as tx:
            return int(tx.query(sql, params)[0][0])

    def count_decisions(
        self,
        *,
        start: float | None = None,
        end: float | None = None,
        app: str | None = None,
        arm: str | None = None,
        policy_version: str | None = None,
    ) -> int:
        """Decisions in ``[start, end)``, optionally of one app, arm and policy version."""
        params: list[Any] = []
        clauses = _range("ts", start, end, params)
        _equal("app", app, clauses, params)
        _equal("arm", arm, clauses, params)
        _equal("policy_version", policy_version, clauses, params)
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
        wait: bool = True,
    ) -> JoinStepReport:
        """One atomic step of the delayed-reward join (see :mod:`rlops.store.sql_join`)."""
        return self._join.step(config, now=now, batch_size=batch_size, fault=fault, wait=wait)

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
