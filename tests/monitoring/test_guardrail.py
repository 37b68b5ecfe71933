"""The guardrail against a real registry: alerts in, rollbacks (or reasons why not) out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rlops.core.clock import ManualClock
from rlops.core.errors import ConflictError, ValidationError
from rlops.monitoring.alert_conditions import labels_of
from rlops.monitoring.alert_rules import default_rules
from rlops.monitoring.alerts import Alert, AlertEvaluator, series
from rlops.monitoring.guardrail import Guardrail
from rlops.registry.registry import Registry
from tests.serving.helpers import register_mlp

T0 = 1_700_000_000.0
ARMS = {"main": "production", "canary": "candidate", "holdout": None}


def alias_of(arm: str) -> str | None:
    return ARMS.get(arm)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "registry"


@pytest.fixture
def registry(root: Path) -> Iterator[Registry]:
    """The registry the guardrail acts on; ``register_mlp`` writes to the same root."""
    with Registry.open(root, clock=ManualClock(T0)) as opened:
        yield opened


def collapse(arm: str = "main", *, starts_at: float = T0, **labels: str) -> Alert:
    found = {"alertname": "RlopsModeCollapse", "app": "pricing", "severity": "critical"}
    found.update({"arm": arm, **labels} if arm else labels)
    return Alert(
        name="RlopsModeCollapse",
        labels=labels_of(found),
        state="firing",
        starts_at=starts_at,
        ends_at=None,
        value=0.93,
        annotations=(("summary", f"{arm}: one action takes 0.93"),),
    )


def guardrail(registry: Registry, **changes: object) -> Guardrail:
    kwargs: dict[str, object] = {
        "policies": {"RlopsModeCollapse": "rollback", "RlopsPolicyLoadFailure": "rollback"},
        "alias_of": alias_of,
        **changes,
    }
    return Guardrail(registry, "pricing", **kwargs)  # type: ignore[arg-type]  # test kwargs


def test_mode_collapse_on_production_rolls_back_once_per_firing(
    root: Path, registry: Registry
) -> None:
    v1 = register_mlp(root, 0, promote_to="production")
    v2 = register_mlp(root, 1, promote_to="production")
    guard = guardrail(registry)
    rules = [replace(r, for_seconds=900) for r in default_rules() if r.name == "RlopsModeCollapse"]
    clock = ManualClock(T0)
    evaluator = AlertEvaluator(rules, clock=clock)
    key = series("rlops_action_share_max", app="pricing", arm="main", segment="new")
    assert guard.handle(evaluator.evaluate({key: 0.95})) == []  # pending
    clock.advance(900)
    (record,) = guard.handle(evaluator.evaluate({key: 0.95}))

    assert (record.outcome, record.alias, record.action) == (
        "rolled_back",
        "production",
        "rollback",
    )
    assert (record.from_version, record.to_version) == (v2, v1)
    assert record.reason.startswith("RlopsModeCollapse: pricing/main: one action takes 0.95")
    assert registry.require_alias("pricing", "production").version == v1
    last = registry.history("pricing", "production")[-1]
    assert (last.kind, last.actor, last.reason) == ("rollback", "guardrail", record.reason)
    assert (last.from_version, last.to_version) == (v2, v1)

    # The same firing, seen again (the evaluator's list of what fires, a replay): nothing.
    clock.advance(60)
    assert guard.handle(evaluator.evaluate({key: 0.95}) + evaluator.firing()) == []
    assert registry.require_alias("pricing", "production").version == v1
    assert len(registry.history("pricing", "production")) == 3
    assert guard.actions == [record]


def test_a_new_firing_of_the_same_alert_acts_again(root: Path, registry: Registry) -> None:
    v1 = register_mlp(root, 0, promote_to="production")
    v2 = register_mlp(root, 1, promote_to="production")
    register_mlp(root, 2, promote_to="production")
    guard = guardrail(registry)
    (first,) = guard.handle([collapse()])
    (second,) = guard.handle([collapse(starts_at=T0 + 3600)])
    assert (first.to_version, second.to_version) == (v2, v1)


def test_alerts_the_guardrail_does_not_guard_change_nothing(root: Path, registry: Registry) -> None:
    register_mlp(root, 0, promote_to="production")
    v2 = register_mlp(root, 1, promote_to="production")
    register_mlp(root, 0, promote_to="candidate")
    register_mlp(root, 1, promote_to="candidate")
    guard = guardrail(registry, app="pricing")
    unguarded = replace(collapse(), name="RlopsFeatureDrift")
    resolved = replace(collapse(), state="resolved", ends_at=T0 + 60)
    assert guard.handle([unguarded, resolved]) == []
    assert guard.handle([collapse("holdout"), collapse("shadow")]) == []  # no guarded alias
    assert guard.handle([collapse(app="advisor")]) == []  # another application
    assert guard.handle([collapse("", alias="shadow")]) == []
    assert registry.require_alias("pricing", "production").version == v2
    assert guard.actions == []


def test_an_alias_label_names_the_alias_directly(root: Path, registry: Registry) -> None:
    v1 = register_mlp(root, 0, promote_to="candidate")
    register_mlp(root, 1, promote_to="candidate")
    failure = replace(collapse("", alias="candidate"), name="RlopsPolicyLoadFailure")
    (record,) = guardrail(registry).handle([failure])
    assert (record.alias, record.outcome, record.to_version) == ("candidate", "rolled_back", v1)


def test_no_previous_version_is_reported_not_raised(root: Path, registry: Registry) -> None:
    v1 = register_mlp(root, 0, promote_to="production")
    guard = guardrail(registry)
    (record,) = guard.handle([collapse()])
    assert (record.outcome, record.from_version, record.to_version) == ("no_previous", None, None)
    assert "no earlier version" in record.detail
    (missing,) = guard.handle([collapse("canary")])  # candidate was never set
    assert missing.outcome == "no_alias"
    assert registry.require_alias("pricing", "production").version == v1
    assert guard.handle([collapse()]) == []  # reported once per firing, not retried


def test_record_only_policy_moves_nothing(root: Path, registry: Registry) -> None:
    v1 = register_mlp(root, 0, promote_to="production")
    v2 = register_mlp(root, 1, promote_to="production")
    guard = guardrail(registry, policies={"RlopsModeCollapse": "record"})
    (record,) = guard.handle([collapse()])
    assert (record.outcome, record.from_version, record.to_version) == ("recorded", v2, v1)
    assert registry.require_alias("pricing", "production").version == v2


def test_a_lost_race_is_reported(
    root: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_mlp(root, 0, promote_to="production")
    register_mlp(root, 1, promote_to="production")

    def moved_meanwhile(*args: object, **kwargs: object) -> None:
        raise ConflictError("alias 'production' moved", field="revision")

    monkeypatch.setattr(registry, "rollback", moved_meanwhile)
    (record,) = guardrail(registry).handle([collapse()])
    assert (record.outcome, record.detail) == ("conflict", "alias 'production' moved")


def test_unknown_actions_are_refused(root: Path, registry: Registry) -> None:
    with pytest.raises(ValidationError):
        guardrail(registry, policies={"RlopsModeCollapse": "page"})
