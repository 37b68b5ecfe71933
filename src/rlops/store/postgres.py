"""PostgreSQL engine (psycopg 3): the production log.

Bulk appends go through ``COPY`` into a session-local staging table and one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING``: COPY is PostgreSQL's fastest ingest
path, and the staging step keeps appends idempotent on the unique ids. Join steps take
a transaction-scoped advisory lock, so several workers may run without double work.
JSON columns are ``json``, not ``jsonb``: jsonb stores numbers as ``numeric`` and gives
``1e20`` back as an integer and ``-0.0`` as ``0``, so records would not round-trip.
Identity values can commit out of order under concurrency, so appends hold a shared
advisory lock that the join's ingestion of new decisions takes exclusively.
Each log lives in its own schema (``?schema=`` in the URL), so tenants and tests don't mix.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from rlops.core.errors import ValidationError
from rlops.store.engine import Tx

TABLES = """
CREATE TABLE IF NOT EXISTS decisions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    ts DOUBLE PRECISION NOT NULL,
    app TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    arm TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    features JSON NOT NULL,
    action_set BIGINT NOT NULL,
    action_id TEXT NOT NULL,
    propensity DOUBLE PRECISION NOT NULL,
    explored SMALLINT NOT NULL
);
CREATE TABLE IF NOT EXISTS action_sets (
    id BIGINT PRIMARY KEY,
    ids JSON NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_ts ON decisions USING brin (ts);
CREATE TABLE IF NOT EXISTS pending (
    event_id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL
);
-- Due decisions come out in index order (time, then id): no sort of the whole backlog.
DROP INDEX IF EXISTS pending_due;
CREATE INDEX IF NOT EXISTS pending_due_order ON pending (app, ts, event_id);
CREATE TABLE IF NOT EXISTS join_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO join_cursor VALUES (1, 0) ON CONFLICT DO NOTHING;
-- Outcomes arrived up to ``ingested`` (set under the ingest lock, so no lower sequence
-- number is uncommitted) and classified up to ``classified`` (by the join).
CREATE TABLE IF NOT EXISTS outcome_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    ingested BIGINT NOT NULL,
    classified BIGINT NOT NULL
);
INSERT INTO outcome_cursor VALUES (1, 0, 0) ON CONFLICT DO NOTHING;
-- Decisions already joined that received new outcomes: each gets a late revision.
CREATE TABLE IF NOT EXISTS rejoin (
    event_id TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS outcomes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outcome_id TEXT NOT NULL UNIQUE,
    event_id TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    signals JSON NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL DEFAULT 'new'
);
CREATE INDEX IF NOT EXISTS outcomes_event ON outcomes (event_id, status);
CREATE INDEX IF NOT EXISTS outcomes_open ON outcomes (status) WHERE status <> 'joined';
CREATE TABLE IF NOT EXISTS examples (
    event_id TEXT NOT NULL,
    reward_spec TEXT NOT NULL,
    revision INTEGER NOT NULL,
    app TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    joined_at DOUBLE PRECISION NOT NULL,
    reward DOUBLE PRECISION NOT NULL,
    late SMALLINT NOT NULL,
    defaulted SMALLINT NOT NULL,
    is_current SMALLINT NOT NULL,
    body JSON NOT NULL,
    PRIMARY KEY (event_id, reward_spec, revision)
);
CREATE INDEX IF NOT EXISTS examples_current ON examples (app, reward_spec, is_current, ts);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO counters VALUES ('duplicate_decisions', 0), ('duplicate_outcomes', 0)
    ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS join_progress (
    app TEXT PRIMARY KEY,
    steps BIGINT NOT NULL,
    examples BIGINT NOT NULL,
    last_step_at DOUBLE PRECISION NOT NULL
)
"""

STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_decisions (
    event_id TEXT, ts DOUBLE PRECISION, app TEXT, unit_id TEXT, arm TEXT,
    policy_version TEXT, features JSON, action_set BIGINT, action_id TEXT,
    propensity DOUBLE PRECISION, explored SMALLINT
);
CREATE TEMP TABLE IF NOT EXISTS stage_outcomes (
    outcome_id TEXT, event_id TEXT, ts DOUBLE PRECISION, signals JSON,
    received_at DOUBLE PRECISION
);
CREATE TEMP TABLE IF NOT EXISTS stage_examples (
    event_id TEXT, reward_spec TEXT, revision INTEGER, app TEXT, ts DOUBLE PRECISION,
    joined_at DOUBLE PRECISION, reward DOUBLE PRECISION, late SMALLINT, defaulted SMALLINT,
    is_current SMALLINT, body JSON
)
"""

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class _PgTx:
    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self.cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.cursor.execute(sql.replace("?", "%s"), params)
        return self.cursor.rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cursor.execute(sql.replace("?", "%s"), params)
        return self.cursor.fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.cursor.executemany(sql.replace("?", "%s"), rows)


class PostgresEngine:
    name = "postgresql"

    def __init__(self, dsn: str, *, schema: str = "rlops") -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ValidationError(f"schema must match {_SCHEMA_NAME.pattern}", field="schema")
        self.dsn = dsn
        self.schema = schema
        self.url = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
        self._lock = threading.RLock()
        self._join_key = zlib.crc32(f"rlops-join:{schema}".encode())
        self._ingest_key = zlib.crc32(f"rlops-ingest:{schema}".encode())
        self._conn = psycopg.connect(dsn, autocommit=True)
        with self._conn.transaction():
            # Serialise concurrent first-time creation of the same schema.
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._join_key + 1,))
            self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            self._conn.execute(f'SET search_path TO "{schema}"')
            # DDL takes table locks that deadlock with a running join step: run it once,
            # keyed on the newest table, so a schema made before it gains it.
            ready = self._conn.execute(
                "SELECT to_regclass(%s)", (f'"{schema}".action_sets',)
            ).fetchone()
            for statement in TABLES.split(";") if ready is None or ready[0] is None else []:
                if statement.strip():
                    self._conn.execute(statement)
        for statement in STAGING.split(";"):
            if statement.strip():
                self._conn.execute(statement)

    @contextmanager
    def write(self) -> Iterator[_PgTx]:
        with self._lock, self._conn.transaction(), self._conn.cursor() as cursor:
            yield _PgTx(cursor)

    @contextmanager
    def read(self) -> Iterator[_PgTx]:
        with self._lock, self._conn.transaction(), self._conn.cursor() as cursor:
            yield _PgTx(cursor)

    @contextmanager
    def join_turn(self, wait: bool) -> Iterator[bool]:
        """Always a turn: joiners queue on the advisory lock of :meth:`lock_join`."""
        yield True

    def lock_join(self, tx: Tx) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(?)", (self._join_key,))

    def lock_append(self, tx: Tx) -> None:
        # Appends share this lock; ingestion takes it exclusively, so when the join
        # worker reads new decisions by sequence number no lower number is uncommitted.
        tx.execute("SELECT pg_advisory_xact_lock_shared(?)", (self._ingest_key,))

    def lock_ingest(self, tx: Tx) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(?)", (self._ingest_key,))

    def insert_ignore(
        self, tx: Tx, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> int:
        assert isinstance(tx, _PgTx)
        cols = ", ".join(columns)
        with tx.cursor.copy(f"COPY stage_{table} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        inserted = tx.execute(
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM stage_{table} ON CONFLICT DO NOTHING"
        )
        tx.execute(f"DELETE FROM stage_{table}")
        return inserted

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(values)]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def drop_schema(self) -> None:
        """Remove this log's schema and everything in it (tests, teardown)."""
        with self._lock:
            self._conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
