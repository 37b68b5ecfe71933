"""The small surface a SQL database must offer the log: transactions and bulk inserts.

SQL is written once with ``?`` placeholders; each engine adapts placeholders, list
parameters, locking and its fastest bulk-insert path. Composition, not inheritance:
:class:`~rlops.store.sql_log.SqlDecisionLog` holds an engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class Tx(Protocol):
    """An open transaction."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Engine(Protocol):
    name: str
    url: str

    def write(self) -> AbstractContextManager[Tx]:
        """An exclusive write transaction: committed on exit, rolled back on error."""
        ...

    def read(self) -> AbstractContextManager[Tx]: ...

    def lock_join(self, tx: Tx) -> None:
        """Serialise join steps across processes for the rest of ``tx``."""
        ...

    def join_turn(self, wait: bool) -> AbstractContextManager[bool]:
        """Whether this process may run a join step now (True) or another one is (False,
        only when not ``wait``): joiners take turns, appenders never wait on them."""
        ...

    def lock_append(self, tx: Tx) -> None:
        """Taken by decision appends (shared among them)."""
        ...

    def lock_ingest(self, tx: Tx) -> None:
        """Wait until no decision append is in flight, and keep appends out until commit."""
        ...

    def insert_ignore(
        self, tx: Tx, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> int:
        """Insert ``rows``, skipping any whose unique key exists; return how many were new."""
        ...

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A ``column IN values`` predicate and its parameters."""
        ...

    def close(self) -> None: ...
