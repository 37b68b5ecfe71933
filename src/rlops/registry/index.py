"""The registry index: versions, aliases, their history and gate records, behind one protocol.

Every backend passes one contract suite (``tests/contract/test_registry_index.py``). The
SQL backend runs the same statements on SQLite and PostgreSQL
(:mod:`rlops.registry.databases`). An alias moves only if its revision is still the one
the writer read: the move and its history row commit together or not at all, so the
history is complete and gap-free by construction.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from rlops.core.errors import ConflictError, NotFoundError, ValidationError
from rlops.registry.databases import Database, open_database
from rlops.registry.gate_record import GateRecord
from rlops.registry.records import AliasEvent, AliasRecord, MoveKind, VersionRecord
from rlops.store.engine import Tx


class RegistryIndex(Protocol):
    """What the registry needs from its index."""

    url: str

    def add_version(self, record: VersionRecord) -> tuple[VersionRecord, bool]:
        """Insert ``record`` unless its ``(name, version)`` exists; return the stored one
        and whether it is new (registration is idempotent on version)."""
        ...

    def get_version(self, name: str, version: str) -> VersionRecord:
        """The record, or :class:`NotFoundError`."""
        ...

    def versions(self, name: str | None = None) -> list[VersionRecord]:
        """Registered versions (of ``name``, or all), oldest registration first."""
        ...

    def alias(self, name: str, alias: str) -> AliasRecord | None: ...

    def aliases(self, name: str | None = None) -> list[AliasRecord]: ...

    def move_alias(
        self,
        *,
        name: str,
        alias: str,
        to_version: str,
        expected_revision: int,
        kind: MoveKind,
        actor: str,
        at: float,
        reason: str = "",
        forced: bool = False,
    ) -> tuple[AliasRecord, AliasEvent]:
        """Point ``alias`` at ``to_version`` if its revision is still ``expected_revision``
        (0: the alias must not exist yet), recording the move; else :class:`ConflictError`."""
        ...

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Moves of ``name``'s aliases (or one alias), oldest first."""
        ...

    def add_gate(self, record: GateRecord) -> None: ...

    def latest_gate(self, name: str, version: str) -> GateRecord | None: ...

    def close(self) -> None: ...


_VERSION_COLUMNS = (
    "name, version, manifest_sha256, path, family, parent_version, created_at, created_by, "
    "registered_at, registered_by"
)
_ALIAS_COLUMNS = "name, alias, version, revision, updated_at, updated_by"
_EVENT_COLUMNS = "name, alias, revision, kind, from_version, to_version, actor, at, reason, forced"


def _version(row: tuple[Any, ...]) -> VersionRecord:
    return VersionRecord(*row)


def _alias(row: tuple[Any, ...]) -> AliasRecord:
    name, alias, version, revision, updated_at, updated_by = row
    return AliasRecord(name, alias, version, int(revision), updated_at, updated_by)


def _event(row: tuple[Any, ...]) -> AliasEvent:
    name, alias, revision, kind, from_version, to_version, actor, at, reason, forced = row
    return AliasEvent(
        name, alias, int(revision), kind, from_version, to_version, actor, at, reason, bool(forced)
    )


class SqlIndex:
    """The index over SQLite or PostgreSQL; safe to share between threads."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.url = database.url

    def add_version(self, record: VersionRecord) -> tuple[VersionRecord, bool]:
        row = record.to_json()
        columns = _VERSION_COLUMNS.split(", ")
        with self.database.write() as tx:
            inserted = tx.execute(
                f"INSERT INTO versions ({_VERSION_COLUMNS}) VALUES "
                f"({', '.join('?' * len(columns))}) ON CONFLICT DO NOTHING",
                [row[c] for c in columns],
            )
            stored = self._get_version(tx, record.name, record.version)
        assert stored is not None  # inserted, or it was there
        return stored, inserted == 1

    def _get_version(self, tx: Tx, name: str, version: str) -> VersionRecord | None:
        rows = tx.query(
            f"SELECT {_VERSION_COLUMNS} FROM versions WHERE name = ? AND version = ?",
            (name, version),
        )
        return _version(rows[0]) if rows else None

    def get_version(self, name: str, version: str) -> VersionRecord:
        with self.database.read() as tx:
            record = self._get_version(tx, name, version)
        if record is None:
            raise NotFoundError(f"policy {name!r} has no version {version!r}", field="version")
        return record

    def versions(self, name: str | None = None) -> list[VersionRecord]:
        where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        with self.database.read() as tx:
            rows = tx.query(
                f"SELECT {_VERSION_COLUMNS} FROM versions {where} "
                "ORDER BY registered_at, name, version",
                params,
            )
        return [_version(r) for r in rows]

    def _alias(self, tx: Tx, name: str, alias: str) -> AliasRecord | None:
        rows = tx.query(
            f"SELECT {_ALIAS_COLUMNS} FROM aliases WHERE name = ? AND alias = ?", (name, alias)
        )
        return _alias(rows[0]) if rows else None

    def alias(self, name: str, alias: str) -> AliasRecord | None:
        with self.database.read() as tx:
            return self._alias(tx, name, alias)

    def aliases(self, name: str | None = None) -> list[AliasRecord]:
        where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        with self.database.read() as tx:
            rows = tx.query(
                f"SELECT {_ALIAS_COLUMNS} FROM aliases {where} ORDER BY name, alias", params
            )
        return [_alias(r) for r in rows]

    def move_alias(
        self,
        *,
        name: str,
        alias: str,
        to_version: str,
        expected_revision: int,
        kind: MoveKind,
        actor: str,
        at: float,
        reason: str = "",
        forced: bool = False,
    ) -> tuple[AliasRecord, AliasEvent]:
        if isinstance(expected_revision, bool) or not isinstance(expected_revision, int):
            raise ValidationError("expected_revision must be an integer", field="revision")
        if expected_revision < 0:
            raise ValidationError("expected_revision must be >= 0", field="revision")
        with self.database.write() as tx:
            if self._get_version(tx, name, to_version) is None:
                raise NotFoundError(
                    f"policy {name!r} has no version {to_version!r}", field="version"
                )
            current = self._alias(tx, name, alias)
            from_version = current.version if current is not None else None
            # Validates every field before anything is written.
            event = AliasEvent(
                name=name,
                alias=alias,
                revision=expected_revision + 1,
                kind=kind,
                from_version=from_version,
                to_version=to_version,
                actor=actor,
                at=at,
                reason=reason,
                forced=forced,
            )
            record = AliasRecord(name, alias, to_version, event.revision, at, actor)
            if expected_revision == 0:
                changed = tx.execute(
                    f"INSERT INTO aliases ({_ALIAS_COLUMNS}) VALUES (?, ?, ?, 1, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (name, alias, to_version, at, actor),
                )
            else:
                # Conditional on the revision read: a concurrent writer's commit makes it
                # match nothing (PostgreSQL re-checks the condition after the row lock).
                changed = tx.execute(
                    "UPDATE aliases SET version = ?, revision = ?, updated_at = ?, "
                    "updated_by = ? WHERE name = ? AND alias = ? AND revision = ?",
                    (to_version, event.revision, at, actor, name, alias, expected_revision),
                )
            if changed != 1:
                latest = self._alias(tx, name, alias)
                where = (
                    "does not exist"
                    if latest is None
                    else f"is at revision {latest.revision} ({latest.version})"
                )
                raise ConflictError(
                    f"alias {alias!r} of {name!r} {where}, not at revision "
                    f"{expected_revision} as expected: someone else moved it; read it again",
                    field="revision",
                )
            if current is not None and current.revision != expected_revision:
                # Read an older revision than the one just updated: impossible under the
                # locks above, but a lie in the history would be worse than an error.
                raise ConflictError("the alias moved during the update", field="revision")
            tx.execute(
                f"INSERT INTO alias_history ({_EVENT_COLUMNS}) VALUES ({', '.join('?' * 10)})",
                (
                    name,
                    alias,
                    event.revision,
                    kind,
                    from_version,
                    to_version,
                    actor,
                    at,
                    reason,
                    int(forced),
                ),
            )
            self.database.announce(tx, json.dumps(record.to_json(), sort_keys=True))
        return record, event

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        sql = f"SELECT {_EVENT_COLUMNS} FROM alias_history WHERE name = ?"
        params: tuple[str, ...] = (name,)
        order = " ORDER BY at, alias, revision"
        if alias is not None:
            sql += " AND alias = ?"
            params, order = (name, alias), " ORDER BY revision"
        with self.database.read() as tx:
            rows = tx.query(sql + order, params)
        return [_event(r) for r in rows]

    def add_gate(self, record: GateRecord) -> None:
        body = json.dumps(record.to_json(), sort_keys=True)
        with self.database.write() as tx:
            if self._get_version(tx, record.name, record.version) is None:
                raise NotFoundError(
                    f"policy {record.name!r} has no version {record.version!r} to gate",
                    field="version",
                )
            tx.execute(
                "INSERT INTO gates (name, version, passed, created_at, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (record.name, record.version, int(record.passed), record.created_at, body),
            )

    def latest_gate(self, name: str, version: str) -> GateRecord | None:
        with self.database.read() as tx:
            rows = tx.query(
                "SELECT body FROM gates WHERE name = ? AND version = ? ORDER BY seq DESC LIMIT 1",
                (name, version),
            )
        return GateRecord.from_json(json.loads(rows[0][0])) if rows else None

    def close(self) -> None:
        self.database.close()


def open_index(url: str) -> SqlIndex:
    """The index at ``url``: ``sqlite:///path/index.db`` or ``postgresql://...?schema=name``."""
    return SqlIndex(open_database(url))
