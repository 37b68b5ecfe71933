"""What the registry index stores: registered versions, aliases and the history of moves.

Records are frozen and round-trip through JSON, so the CLI's ``--json`` output, the
PostgreSQL and SQLite indexes and the notifications all carry the same thing. An alias
is a pointer ``(name, alias) -> version`` with a ``revision`` that counts its moves: a
writer states the revision it read, and the index refuses the move if another writer
got there first (optimistic concurrency).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass
from typing import Any, Literal

from rlops.core.actions import check_id
from rlops.core.errors import ValidationError

#: The alias the server answers with; moving it needs a passing gate (or a forced reason).
PRODUCTION = "production"
CANDIDATE = "candidate"

MoveKind = Literal["promote", "rollback"]
_KINDS = ("promote", "rollback")


def check_text(value: object, name: str, *, empty: bool = False, limit: int = 2000) -> str:
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise ValidationError(f"{name} must be a string of at most {limit} characters", field=name)
    if not empty and not value.strip():
        raise ValidationError(f"{name} must not be empty", field=name)
    return value


def _time(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number of Unix seconds", field=name)
    return float(value)


def fields_of(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The dataclass fields of ``cls`` from ``data``; a missing one is a ValidationError."""
    if not isinstance(data, Mapping):
        raise ValidationError(f"a {cls.__name__} must be a JSON object", field=cls.__name__)
    names = cls.__dataclass_fields__  # type: ignore[attr-defined]  # cls is a dataclass
    missing = [k for k in names if k not in data and names[k].default is MISSING]
    if missing:
        raise ValidationError(f"a {cls.__name__} needs {missing}", field=missing[0])
    return {k: data[k] for k in names if k in data}


def check_revision(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{name} must be an integer >= 0", field=name)
    return value


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One registered artifact: where it lives under the root and the sha256 of its manifest.

    ``manifest_sha256`` is taken at registration; a manifest that changes afterwards (even
    in fields the content version does not cover, like ``evaluation``) is refused on load.
    ``path`` is relative to the registry root, so the root can move between machines.
    """

    name: str
    version: str
    manifest_sha256: str
    path: str
    family: str
    parent_version: str | None
    created_at: float
    created_by: str
    registered_at: float
    registered_by: str

    def __post_init__(self) -> None:
        check_id(self.name, "name")
        check_id(self.version, "version")
        if self.parent_version is not None:
            check_id(self.parent_version, "parent_version")
        if len(self.manifest_sha256) != 64:
            raise ValidationError("manifest_sha256 must be 64 hex digits", field="manifest_sha256")
        check_text(self.path, "path")
        check_text(self.family, "family")
        check_text(self.created_by, "created_by", limit=256)
        check_text(self.registered_by, "registered_by", limit=256)
        object.__setattr__(self, "created_at", _time(self.created_at, "created_at"))
        object.__setattr__(self, "registered_at", _time(self.registered_at, "registered_at"))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "manifest_sha256": self.manifest_sha256,
            "path": self.path,
            "family": self.family,
            "parent_version": self.parent_version,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "registered_at": self.registered_at,
            "registered_by": self.registered_by,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionRecord:
        return cls(**fields_of(cls, data))


@dataclass(frozen=True, slots=True)
class AliasRecord:
    """Where ``alias`` of policy ``name`` points now; ``revision`` counts its moves (from 1)."""

    name: str
    alias: str
    version: str
    revision: int
    updated_at: float
    updated_by: str

    def __post_init__(self) -> None:
        check_id(self.name, "name")
        check_id(self.alias, "alias")
        check_id(self.version, "version")
        check_revision(self.revision, "revision")
        object.__setattr__(self, "updated_at", _time(self.updated_at, "updated_at"))
        check_text(self.updated_by, "updated_by", limit=256)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "version": self.version,
            "revision": self.revision,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AliasRecord:
        return cls(**fields_of(cls, data))


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One move of an alias: who, when, from what, to what, why, and whether gates were skipped.

    ``revision`` is the alias's revision after the move, so an alias's history is ordered
    and gap-free. ``from_version`` is ``None`` for the move that created the alias.
    """

    name: str
    alias: str
    revision: int
    kind: MoveKind
    from_version: str | None
    to_version: str
    actor: str
    at: float
    reason: str = ""
    forced: bool = False

    def __post_init__(self) -> None:
        check_id(self.name, "name")
        check_id(self.alias, "alias")
        check_revision(self.revision, "revision")
        if self.kind not in _KINDS:
            raise ValidationError(f"kind must be one of {_KINDS}", field="kind")
        if self.from_version is not None:
            check_id(self.from_version, "from_version")
        check_id(self.to_version, "to_version")
        check_text(self.actor, "actor", limit=256)
        object.__setattr__(self, "at", _time(self.at, "at"))
        check_text(self.reason, "reason", empty=not self.forced)
        if not isinstance(self.forced, bool):
            raise ValidationError("forced must be a boolean", field="forced")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "revision": self.revision,
            "kind": self.kind,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor,
            "at": self.at,
            "reason": self.reason,
            "forced": self.forced,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AliasEvent:
        return cls(**fields_of(cls, data))
