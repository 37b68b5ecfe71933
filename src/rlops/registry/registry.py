"""The policy registry: immutable artifacts under a root, an index, aliases that move by rule.

``register`` copies a verified artifact in, once per version (idempotent). ``load``
checks the manifest against the sha256 recorded at registration and then every file and
array (:func:`rlops.policies.artifact.load_policy`): a tampered, truncated or lying
artifact is an :class:`~rlops.core.errors.IntegrityError` and nothing the caller already
serves changes. ``promote`` moves an alias; moving a gated alias (``production``) needs
the version's latest gate record to have passed against the version in production now,
or ``force`` with a reason, which the history keeps. ``rollback`` moves an alias back to
the version it held before the current one (moves form a stack; rollbacks pop it). Every
move is conditional on the alias revision the caller read, so of two concurrent moves one
wins and the other gets a :class:`~rlops.core.errors.ConflictError`.
"""

from __future__ import annotations

import getpass
import logging
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from rlops.core.actions import ActionCatalog, check_id
from rlops.core.clock import Clock, RealClock
from rlops.core.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from rlops.core.features import FeatureSchema
from rlops.policies.artifact import (
    MANIFEST,
    LoadedPolicy,
    Manifest,
    SaveablePolicy,
    read_manifest,
    save_policy,
)
from rlops.registry.artifacts import place, sha256_file, verify
from rlops.registry.gate_record import GateRecord
from rlops.registry.index import RegistryIndex, open_index
from rlops.registry.records import (
    PRODUCTION,
    AliasEvent,
    AliasRecord,
    VersionRecord,
    check_revision,
    check_text,
)

log = logging.getLogger(__name__)
OnMove = Callable[[AliasRecord], None]


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "rlops"


def _stale(name: str, alias: str, expected: int, current: AliasRecord | None) -> ConflictError:
    where = "does not exist" if current is None else f"is at revision {current.revision}"
    return ConflictError(
        f"alias {alias!r} of {name!r} {where}, not {expected} as expected: it moved; read it again",
        field="revision",
    )


def _move_args(alias: str, actor: str, reason: str, expected: int | None) -> None:
    """Check a move's arguments before anything is read or written."""
    check_id(alias, "alias")
    check_text(actor, "actor", limit=256)
    check_text(reason, "reason", empty=True)
    if expected is not None:
        check_revision(expected, "expected_revision")


def previous_version(events: Sequence[AliasEvent]) -> str | None:
    """The version a rollback returns to: replay the moves as a stack (a promotion pushes,
    a rollback pops) and take the entry below the top. ``None`` when there is none."""
    stack: list[str] = []
    for event in sorted(events, key=lambda e: e.revision):
        if event.kind == "promote":
            stack.append(event.to_version)
        elif stack:
            stack.pop()
    return stack[-2] if len(stack) >= 2 else None


class Registry:
    """Artifacts under ``root`` and an index (SQLite file by default, or PostgreSQL)."""

    def __init__(
        self,
        root: str | Path,
        index: RegistryIndex,
        *,
        gated_aliases: Iterable[str] = (PRODUCTION,),
        clock: Clock | None = None,
        on_move: Sequence[OnMove] = (),
    ) -> None:
        self.root = Path(root)
        self.index = index
        self.gated_aliases = frozenset(gated_aliases)
        self.clock: Clock = clock if clock is not None else RealClock()
        self.on_move = list(on_move)
        #: Moves whose announcement hook raised (the move itself committed).
        self.announce_failures = 0

    @classmethod
    def open(cls, root: str | Path, index_url: str | None = None, **kwargs: Any) -> Registry:
        """The registry at ``root``; its index defaults to ``<root>/index.db`` (SQLite)."""
        root = Path(root)
        url = index_url if index_url else f"sqlite:///{root / 'index.db'}"
        return cls(root, open_index(url), **kwargs)

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- versions -------------------------------------------------------------------------

    def register(self, source: str | Path, *, actor: str | None = None) -> VersionRecord:
        """Copy the artifact directory ``source`` in (verified) and index it.

        Idempotent on version: registering a version again returns the stored record and
        writes nothing, even if the new copy's manifest differs in fields the version
        does not cover (``created_at``, ``evaluation``).
        """
        source = Path(source)
        manifest = read_manifest(source)
        check_id(manifest.name, "name")
        check_id(manifest.version, "version")
        try:
            return self.index.get_version(manifest.name, manifest.version)
        except NotFoundError:
            pass
        manifest, path = place(source, self.root)
        record = VersionRecord(
            name=manifest.name,
            version=manifest.version,
            manifest_sha256=sha256_file(self.root / path / MANIFEST),
            path=path,
            family=manifest.family,
            parent_version=manifest.parent_version,
            created_at=manifest.created_at,
            created_by=manifest.created_by,
            registered_at=self.clock.now(),
            registered_by=actor or default_actor(),
        )
        stored, _ = self.index.add_version(record)
        return stored

    def register_policy(
        self,
        policy: SaveablePolicy,
        *,
        name: str,
        schema: FeatureSchema,
        catalog: ActionCatalog,
        actor: str | None = None,
        **manifest_fields: Any,
    ) -> VersionRecord:
        """Save ``policy`` as an artifact (:func:`save_policy`'s fields) and register it."""
        check_id(name, "name")
        manifest_fields.setdefault("created_at", self.clock.now())
        manifest_fields.setdefault("created_by", actor or default_actor())
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".save-", dir=self.root) as scratch:
            directory = Path(scratch) / "artifact"
            save_policy(
                directory, policy, name=name, schema=schema, catalog=catalog, **manifest_fields
            )
            return self.register(directory, actor=actor)

    def version(self, name: str, version: str) -> VersionRecord:
        return self.index.get_version(name, version)

    def versions(self, name: str | None = None) -> list[VersionRecord]:
        return self.index.versions(name)

    def resolve(self, name: str, ref: str) -> VersionRecord:
        """``ref`` as an alias of ``name`` if one has that name, else as a version."""
        alias = self.index.alias(name, ref)
        return self.index.get_version(name, alias.version if alias is not None else ref)

    def _checked_manifest(self, record: VersionRecord) -> Path:
        """The artifact's directory, once its manifest matches the registered sha256."""
        relative = Path(record.path)
        if relative.is_absolute() or ".." in relative.parts:
            raise IntegrityError(f"the index points outside the root: {record.path}", field="path")
        directory = self.root / relative
        try:
            digest = sha256_file(directory / MANIFEST)
        except FileNotFoundError:
            raise IntegrityError(
                f"the artifact of {record.name} {record.version} is missing its manifest",
                field="manifest",
            ) from None
        if digest != record.manifest_sha256:
            raise IntegrityError(
                f"the manifest of {record.name} {record.version} changed since registration "
                f"(sha256 {digest[:12]}, registered {record.manifest_sha256[:12]})",
                field="manifest",
            )
        return directory

    def manifest(self, name: str, version: str) -> Manifest:
        """The registered manifest, checked against its sha256 (arrays are not read)."""
        return read_manifest(self._checked_manifest(self.index.get_version(name, version)))

    def load(self, name: str, version: str) -> LoadedPolicy:
        """Load and verify ``name`` at ``version``; refuse anything that is not as registered."""
        record = self.index.get_version(name, version)
        return verify(self._checked_manifest(record), name=name, version=version)

    def load_alias(self, name: str, alias: str) -> LoadedPolicy:
        return self.load(name, self.require_alias(name, alias).version)

    # -- aliases --------------------------------------------------------------------------

    def alias(self, name: str, alias: str) -> AliasRecord | None:
        return self.index.alias(name, alias)

    def require_alias(self, name: str, alias: str) -> AliasRecord:
        record = self.index.alias(name, alias)
        if record is None:
            raise NotFoundError(f"policy {name!r} has no alias {alias!r}", field="alias")
        return record

    def aliases(self, name: str | None = None) -> list[AliasRecord]:
        return self.index.aliases(name)

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        return self.index.history(name, alias)

    def record_gate(self, record: GateRecord) -> None:
        self.index.add_gate(record)

    def gate(self, name: str, version: str) -> GateRecord | None:
        return self.index.latest_gate(name, version)

    def _check_gate(self, name: str, version: str, incumbent: str | None) -> None:
        gate = self.index.latest_gate(name, version)
        if gate is None:
            raise ValidationError(
                f"{name} {version} has no gate record: run `rlops gate --app APP --name {name} "
                f"--version {version}`, or force the promotion with a reason",
                field="gate",
            )
        if not gate.passed:
            raise ValidationError(
                f"{name} {version} failed its gate: {'; '.join(gate.failures())}", field="gate"
            )
        if gate.against_version != incumbent:
            raise ValidationError(
                f"the gate compared {version} with "
                f"{gate.against_version or 'the logging policy'}, but production holds "
                f"{incumbent or 'nothing'} now: run the gate again",
                field="gate",
            )

    def promote(
        self,
        name: str,
        version: str,
        *,
        alias: str = PRODUCTION,
        actor: str | None = None,
        reason: str = "",
        force: bool = False,
        expected_revision: int | None = None,
    ) -> AliasRecord:
        """Point ``alias`` at ``version``.

        ``expected_revision`` is the alias revision the caller decided on (0: the alias
        must not exist); by default, the revision read here. A gated alias needs a
        passing gate against its current version unless ``force`` (which needs a
        ``reason``). The artifact is verified first: a damaged one is never promoted.
        Promoting to the version already there changes nothing.
        """
        actor = actor if actor is not None else default_actor()
        _move_args(alias, actor, reason, expected_revision)
        if force and not reason.strip():
            raise ValidationError("a forced promotion needs a reason", field="reason")
        self.load(name, version)
        current = self.index.alias(name, alias)
        revision = current.revision if current is not None else 0
        if expected_revision is not None and expected_revision != revision:
            raise _stale(name, alias, expected_revision, current)
        if current is not None and current.version == version:
            return current
        if alias in self.gated_aliases and not force:
            self._check_gate(name, version, current.version if current is not None else None)
        record, _ = self.index.move_alias(
            name=name,
            alias=alias,
            to_version=version,
            expected_revision=revision,
            kind="promote",
            actor=actor,
            at=self.clock.now(),
            reason=reason,
            forced=force,
        )
        self._announce(record)
        return record

    def rollback_target(self, name: str, alias: str = PRODUCTION) -> tuple[AliasEvent, str]:
        """The alias's latest move and the version a rollback would return to."""
        events = self.index.history(name, alias)
        if not events:
            self.require_alias(name, alias)  # raises NotFoundError
        target = previous_version(events)
        if not events or target is None:
            raise ValidationError(
                f"alias {alias!r} of {name!r} has no earlier version to roll back to",
                field="alias",
            )
        return max(events, key=lambda e: e.revision), target

    def rollback(
        self,
        name: str,
        *,
        alias: str = PRODUCTION,
        actor: str | None = None,
        reason: str = "",
        expected_revision: int | None = None,
    ) -> AliasRecord:
        """Move ``alias`` back to the version it held before the current one.

        No gate: the target already served from this alias. Only its manifest is checked
        here (fast, for an emergency); servers verify the whole artifact as they load it
        and keep serving what they have if it fails.
        """
        actor = actor if actor is not None else default_actor()
        _move_args(alias, actor, reason, expected_revision)
        latest, target = self.rollback_target(name, alias)
        if expected_revision is not None and expected_revision != latest.revision:
            raise _stale(name, alias, expected_revision, self.index.alias(name, alias))
        self._checked_manifest(self.index.get_version(name, target))
        record, _ = self.index.move_alias(
            name=name,
            alias=alias,
            to_version=target,
            expected_revision=latest.revision,
            kind="rollback",
            actor=actor,
            at=self.clock.now(),
            reason=reason,
        )
        self._announce(record)
        return record

    def _announce(self, record: AliasRecord) -> None:
        for hook in self.on_move:
            try:
                hook(record)
            except Exception:  # the move committed; a lost announcement is healed by resync
                self.announce_failures += 1
                log.exception("announcing %s %s -> %s failed", record.name, record.alias, record)
