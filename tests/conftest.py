"""Shared fixtures: real log backends.

PostgreSQL tests talk to the server on 127.0.0.1:5432 (database ``test``). Without it
they skip with the reason, except under CI (``CI`` set), where a missing server fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from rlops.store import SqlDecisionLog, open_log
from tests.serving.redis_server import REDIS_SERVER, PrivateRedis
from tests.tools import require_binary

# CI runs the same examples every time (a failure there reproduces anywhere); local runs
# keep exploring new ones. No deadline: a loaded two-core machine is not a slow function.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

PG_DSN = os.environ.get("RLOPS_PG_DSN", "postgresql://127.0.0.1:5432/test")


def postgres_available() -> str | None:
    """None if the server answers, else why not."""
    import psycopg

    try:
        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except psycopg.OperationalError as error:
        return f"PostgreSQL not reachable at {PG_DSN}: {str(error).strip()[:120]}"
    return None


def require_postgres() -> None:
    reason = postgres_available()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so PostgreSQL tests must not skip: {reason}")
        pytest.skip(reason)


def new_postgres_log() -> tuple[SqlDecisionLog, str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    return open_log(f"{PG_DSN}?schema={schema}"), schema


def drop_postgres_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlDecisionLog]:
    """Each backend in turn: every contract test runs against both."""
    if request.param == "sqlite":
        decision_log = open_log(tmp_path / "log.db")
        yield decision_log
        decision_log.close()
        return
    require_postgres()
    decision_log, schema = new_postgres_log()
    yield decision_log
    decision_log.close()
    drop_postgres_schema(schema)


@pytest.fixture
def durable_redis() -> Iterator[PrivateRedis]:
    """``appendonly yes``, ``appendfsync always``: a restart keeps every acknowledged entry."""
    require_binary(REDIS_SERVER, "redis-server", package="redis-server")
    with PrivateRedis(appendonly=True) as server:
        yield server


@pytest.fixture
def volatile_redis() -> Iterator[PrivateRedis]:
    """Keeps nothing on disk: a restart loses the streams and their groups."""
    require_binary(REDIS_SERVER, "redis-server", package="redis-server")
    with PrivateRedis() as server:
        yield server
