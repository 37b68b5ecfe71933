"""The registry contract, on the SQLite index and on PostgreSQL alike.

Registration is idempotent on version; loading verifies; aliases move only by the rules
(gates for production, a reason for force, the revision the writer read) and every move
is in the history; bad input raises and changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlops.core.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from rlops.policies.artifact import MANIFEST
from rlops.registry.gate_record import BatteryCheck, GateRecord, KlCheck, OffPolicyCheck
from rlops.registry.records import PRODUCTION
from rlops.registry.registry import Registry
from tests.registry.conftest import NAME, register_fixed, save_fixed


def gate(version: str, against: str | None, *, passed: bool = True) -> GateRecord:
    """A gate record with made-up numbers (the checks themselves are tested elsewhere)."""
    return GateRecord(
        name=NAME,
        version=version,
        against_version=against,
        battery=BatteryCheck("pricing", True, (0,), ("ok normal: reward >= 0",)),
        off_policy=OffPolicyCheck(
            "snips", 0.5, 0.4 if passed else 0.1, 0.6, 0.95, 0.3, "v", 10, 9.0
        ),
        kl=KlCheck(0.1, 0.2, 0.5, 0.05, "baseline", 10),
        created_at=5.0,
        created_by="test",
    )


def state(registry: Registry) -> tuple[object, ...]:
    """Everything a failed call must leave as it was."""
    return (
        registry.versions(),
        registry.aliases(),
        registry.history(NAME),
        sorted(p.name for p in (registry.root / "artifacts").rglob("*"))
        if (registry.root / "artifacts").exists()
        else [],
    )


def test_register_copies_verifies_and_indexes(registry: Registry, tmp_path: Path) -> None:
    source = save_fixed(tmp_path / "src", 0)
    record = registry.register(source, actor="alice")
    assert record.name == NAME and record.family == "mlp" and record.registered_by == "alice"
    stored = registry.root / record.path
    assert record.path == f"artifacts/{NAME}/{record.version}"
    assert sorted(p.name for p in stored.iterdir()) == ["manifest.json", "weights.npz"]
    assert registry.load(NAME, record.version).version == record.version
    assert registry.versions(NAME) == [record]
    assert registry.version(NAME, record.version) == record


def test_register_is_idempotent_on_version(registry: Registry, tmp_path: Path) -> None:
    first = registry.register(save_fixed(tmp_path / "a", 0, created_at=1.0))
    # Same model, saved later: a different manifest, the same content version.
    again = registry.register(save_fixed(tmp_path / "b", 0, created_at=99.0))
    assert again == first
    assert len(registry.versions()) == 1
    assert registry.manifest(NAME, first.version).created_at == 1.0


def test_a_tampered_source_is_not_registered(registry: Registry, tmp_path: Path) -> None:
    source = save_fixed(tmp_path / "src", 0)
    data = json.loads((source / MANIFEST).read_text())
    data["arrays"]["w0"]["shape"] = [1, 1]
    (source / MANIFEST).write_text(json.dumps(data))
    before = state(registry)
    with pytest.raises(IntegrityError):
        registry.register(source)
    assert state(registry) == before


def test_unknown_versions_and_aliases_are_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError):
        registry.load(NAME, "0123456789abcdef0123")
    with pytest.raises(NotFoundError):
        registry.require_alias(NAME, PRODUCTION)
    with pytest.raises(NotFoundError):
        registry.promote(NAME, "0123456789abcdef0123", alias="candidate")
    assert registry.alias(NAME, "candidate") is None


def test_non_gated_aliases_move_and_keep_history(registry: Registry) -> None:
    v1, v2 = register_fixed(registry, 0), register_fixed(registry, 1)
    first = registry.promote(NAME, v1, alias="candidate", actor="alice", reason="try it")
    assert (first.version, first.revision) == (v1, 1)
    second = registry.promote(NAME, v2, alias="candidate", actor="bob")
    assert (second.version, second.revision) == (v2, 2)
    assert registry.promote(NAME, v2, alias="candidate") == second  # already there: no move
    events = registry.history(NAME, "candidate")
    assert [
        (e.revision, e.kind, e.from_version, e.to_version, e.actor, e.reason) for e in events
    ] == [
        (1, "promote", None, v1, "alice", "try it"),
        (2, "promote", v1, v2, "bob", ""),
    ]
    assert registry.resolve(NAME, "candidate").version == v2
    assert registry.resolve(NAME, v1).version == v1


def test_production_needs_a_passing_gate_against_the_incumbent(registry: Registry) -> None:
    v1, v2, v3 = (register_fixed(registry, a) for a in (0, 1, 2))
    before = state(registry)
    with pytest.raises(ValidationError, match="no gate record"):
        registry.promote(NAME, v1)
    registry.record_gate(gate(v1, None, passed=False))
    with pytest.raises(ValidationError, match="failed its gate"):
        registry.promote(NAME, v1)
    assert state(registry)[1:3] == before[1:3]
    registry.record_gate(gate(v1, None))  # the latest record counts
    assert registry.promote(NAME, v1).version == v1
    registry.record_gate(gate(v3, None))  # compared with the logging policy, but v1 serves now
    with pytest.raises(ValidationError, match="run the gate again"):
        registry.promote(NAME, v3)
    registry.record_gate(gate(v2, v1))
    assert registry.promote(NAME, v2).version == v2
    round_trip = registry.gate(NAME, v2)
    assert round_trip == gate(v2, v1) and round_trip is not None and round_trip.passed


def test_a_forced_promotion_needs_a_reason_and_is_marked(registry: Registry) -> None:
    v1 = register_fixed(registry, 0)
    for reason in ("", "   "):
        with pytest.raises(ValidationError, match="reason"):
            registry.promote(NAME, v1, force=True, reason=reason)
    assert registry.history(NAME) == []
    registry.promote(NAME, v1, force=True, reason="first release", actor="carol")
    (event,) = registry.history(NAME, PRODUCTION)
    assert event.forced and event.reason == "first release" and event.actor == "carol"


def test_rollback_walks_back_the_promotions(registry: Registry) -> None:
    v1, v2, v3 = (register_fixed(registry, a) for a in (0, 1, 2))
    with pytest.raises(NotFoundError):
        registry.rollback(NAME)
    for v in (v1, v2, v3):
        registry.promote(NAME, v, force=True, reason="setup")
    assert registry.rollback(NAME, reason="v3 is bad").version == v2
    assert registry.rollback(NAME, reason="v2 too").version == v1
    with pytest.raises(ValidationError, match="no earlier version"):
        registry.rollback(NAME)
    registry.promote(NAME, v3, force=True, reason="fixed")
    assert registry.rollback(NAME).version == v1
    kinds = [(e.kind, e.from_version, e.to_version) for e in registry.history(NAME, PRODUCTION)]
    assert kinds[3:] == [
        ("rollback", v3, v2),
        ("rollback", v2, v1),
        ("promote", v1, v3),
        ("rollback", v3, v1),
    ]


def test_a_stale_revision_is_a_conflict_and_changes_nothing(registry: Registry) -> None:
    v1, v2 = register_fixed(registry, 0), register_fixed(registry, 1)
    registry.promote(NAME, v1, alias="candidate", expected_revision=0)
    with pytest.raises(ConflictError):
        registry.promote(NAME, v2, alias="candidate", expected_revision=0)
    registry.promote(NAME, v2, alias="candidate", expected_revision=1)
    before = state(registry)
    with pytest.raises(ConflictError):
        registry.promote(NAME, v1, alias="candidate", expected_revision=1)
    with pytest.raises(ConflictError):
        registry.rollback(NAME, alias="candidate", expected_revision=1)
    assert state(registry) == before
    assert registry.rollback(NAME, alias="candidate", expected_revision=2).version == v1


@pytest.mark.parametrize(
    ("alias", "kwargs", "error"),
    [
        ("bad/alias", {}, ValidationError),
        ("", {}, ValidationError),
        ("candidate", {"expected_revision": -1}, ValidationError),
        ("candidate", {"actor": ""}, ValidationError),
        ("candidate", {"actor": "x" * 300}, ValidationError),
        ("candidate", {"reason": "\x00"}, ValidationError),
    ],
)
def test_bad_moves_are_refused_and_change_nothing(
    registry: Registry, alias: str, kwargs: dict[str, object], error: type[Exception]
) -> None:
    v1 = register_fixed(registry, 0)
    before = state(registry)
    with pytest.raises(error):
        registry.promote(NAME, v1, alias=alias, **kwargs)  # type: ignore[arg-type]  # the table mixes keyword types
    assert state(registry) == before


def test_gates_for_unknown_versions_are_refused(registry: Registry) -> None:
    with pytest.raises(NotFoundError):
        registry.record_gate(gate("0123456789abcdef0123", None))
    assert registry.gate(NAME, "0123456789abcdef0123") is None


def test_records_round_trip_through_json(registry: Registry) -> None:
    from rlops.registry.records import AliasEvent, AliasRecord, VersionRecord

    v1 = register_fixed(registry, 0)
    registry.promote(NAME, v1, force=True, reason="r")
    assert VersionRecord.from_json(registry.version(NAME, v1).to_json()) == registry.version(
        NAME, v1
    )
    alias = registry.require_alias(NAME, PRODUCTION)
    assert AliasRecord.from_json(json.loads(json.dumps(alias.to_json()))) == alias
    (event,) = registry.history(NAME)
    assert AliasEvent.from_json(json.loads(json.dumps(event.to_json()))) == event
    record = gate(v1, None)
    assert GateRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    with pytest.raises(ValidationError, match="needs"):
        AliasRecord.from_json({"name": NAME})
