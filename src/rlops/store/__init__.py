"""Logs (SQLite, PostgreSQL) and dataset snapshots (Parquet)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rlops.core.errors import ValidationError
from rlops.store.log import AppendResult, DecisionLog, JoinStepReport, LogStats
from rlops.store.sql_log import SqlDecisionLog


def open_log(url: str | Path) -> SqlDecisionLog:
    """Open (creating if needed) the log at ``url``.

    ``sqlite:///path/to/log.db`` (or a bare path) for the embedded default;
    ``postgresql://host/db?schema=name`` for PostgreSQL (schema defaults to ``rlops``).
    """
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        from rlops.store.postgres import PostgresEngine

        parts = urlsplit(text)
        query = dict(parse_qsl(parts.query))
        schema = query.pop("schema", "rlops")
        dsn = urlunsplit(parts._replace(query=urlencode(query)))
        return SqlDecisionLog(PostgresEngine(dsn, schema=schema))
    if "://" in text and not text.startswith("sqlite:///"):
        raise ValidationError(
            f"unsupported log url {text!r}: use sqlite:///path or postgresql://...", field="url"
        )
    from rlops.store.sqlite import SqliteEngine

    return SqlDecisionLog(SqliteEngine(text.removeprefix("sqlite:///")))


__all__ = [
    "AppendResult",
    "DecisionLog",
    "JoinStepReport",
    "LogStats",
    "SqlDecisionLog",
    "open_log",
]
