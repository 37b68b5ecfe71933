"""The two databases an index can live in: one SQLite file (embedded) or a PostgreSQL schema.

SQL is written once with ``?`` placeholders (:mod:`rlops.registry.index`); each database
adapts placeholders, opens transactions and announces alias moves. SQLite's ``BEGIN
IMMEDIATE`` takes the write lock up front, so two processes moving one alias are
serialised and the second sees the first's revision. PostgreSQL's conditional
``UPDATE ... WHERE revision = ?`` waits for a concurrent writer's row lock and then
re-checks the condition, so the loser updates nothing; ``pg_notify`` inside the same
transaction is delivered to listeners exactly when the move commits, never before.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rlops.core.errors import ValidationError
from rlops.store.engine import Tx
from rlops.store.sqlite import connect_wal, read_transaction, write_transaction

# DOUBLE PRECISION is a float64 in both (SQLite gives it REAL affinity); JSON bodies are
# TEXT, read back by the index, so floats round-trip exactly.
DDL = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    family TEXT NOT NULL,
    parent_version TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    created_by TEXT NOT NULL,
    registered_at DOUBLE PRECISION NOT NULL,
    registered_by TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version TEXT NOT NULL,
    revision BIGINT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES versions (name, version)
);
CREATE TABLE IF NOT EXISTS alias_history (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    revision BIGINT NOT NULL,
    kind TEXT NOT NULL,
    from_version TEXT,
    to_version TEXT NOT NULL,
    actor TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL,
    forced SMALLINT NOT NULL,
    PRIMARY KEY (name, alias, revision)
);
CREATE TABLE IF NOT EXISTS gates (
    seq {serial},
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    passed SMALLINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    body TEXT NOT NULL,
    FOREIGN KEY (name, version) REFERENCES versions (name, version)
);
CREATE INDEX IF NOT EXISTS gates_version ON gates (name, version, seq)
"""


class Database(Protocol):
    """Transactions and change announcements; the index holds one."""

    url: str

    def write(self) -> AbstractContextManager[Tx]:
        """A write transaction, committed on exit and rolled back on error."""
        ...

    def read(self) -> AbstractContextManager[Tx]: ...

    def announce(self, tx: Tx, payload: str) -> None:
        """Tell listeners (when ``tx`` commits) that an alias moved; may do nothing."""
        ...

    def close(self) -> None: ...


class SqliteDatabase:
    """One file in WAL mode; readers never block the writer, writers queue on a lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.RLock()
        self._conn = connect_wal(self.path)
        self._conn.execute("PRAGMA foreign_keys=ON")
        with self.write() as tx:
            for statement in DDL.format(serial="INTEGER PRIMARY KEY").split(";"):
                if statement.strip():
                    tx.execute(statement)

    def write(self) -> AbstractContextManager[Tx]:
        return write_transaction(self._conn, self._lock)

    def read(self) -> AbstractContextManager[Tx]:
        return read_transaction(self._conn, self._lock)

    def announce(self, tx: Tx, payload: str) -> None:
        """Nothing to send: embedded watchers notice the file change by polling."""

    def files(self) -> tuple[Path, Path]:
        """The database and its write-ahead log: every commit changes one of them."""
        return self.path, self.path.with_name(self.path.name + "-wal")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _PgTx:
    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.cursor.execute(sql.replace("?", "%s"), params)
        return int(self.cursor.rowcount)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cursor.execute(sql.replace("?", "%s"), params)
        rows: list[tuple[Any, ...]] = self.cursor.fetchall()
        return rows

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.cursor.executemany(sql.replace("?", "%s"), rows)


_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel of one registry schema (within PostgreSQL's 63 bytes)."""
    return f"rlops_registry_{zlib.crc32(schema.encode()):08x}"


class PostgresDatabase:
    """One schema of a PostgreSQL database (``?schema=`` in the URL; default ``rlops_registry``)."""

    def __init__(self, dsn: str, *, schema: str = "rlops_registry") -> None:
        import psycopg

        if not _SCHEMA_NAME.match(schema):
            raise ValidationError(f"schema must match {_SCHEMA_NAME.pattern}", field="schema")
        self.dsn = dsn
        self.schema = schema
        self.channel = notify_channel(schema)
        self.url = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
        self._lock = threading.RLock()
        self._conn = psycopg.connect(dsn, autocommit=True)
        with self._conn.transaction():
            # Two processes creating one schema at once would race on the catalog.
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(self.url.encode()),))
            self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            self._conn.execute(f'SET search_path TO "{schema}"')
            serial = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
            for statement in DDL.format(serial=serial).split(";"):
                if statement.strip():
                    self._conn.execute(statement)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        with self._lock, self._conn.transaction(), self._conn.cursor() as cursor:
            yield _PgTx(cursor)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self._lock, self._conn.transaction(), self._conn.cursor() as cursor:
            yield _PgTx(cursor)

    def announce(self, tx: Tx, payload: str) -> None:
        tx.execute("SELECT pg_notify(?, ?)", (self.channel, payload))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def drop(self) -> None:
        """Remove this registry's schema and everything in it (tests, teardown)."""
        with self._lock:
            self._conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


def split_postgres_url(url: str) -> tuple[str, str]:
    """``postgresql://host/db?schema=name`` as ``(dsn, schema)``."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", "rlops_registry")
    return urlunsplit(parts._replace(query=urlencode(query))), schema


def open_database(url: str | Path) -> SqliteDatabase | PostgresDatabase:
    """``sqlite:///path`` (or a bare path) or ``postgresql://host/db?schema=name``."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        dsn, schema = split_postgres_url(text)
        return PostgresDatabase(dsn, schema=schema)
    if "://" in text and not text.startswith("sqlite:///"):
        raise ValidationError(
            f"unsupported index url {text!r}: use sqlite:///path or postgresql://...",
            field="index",
        )
    return SqliteDatabase(text.removeprefix("sqlite:///"))
