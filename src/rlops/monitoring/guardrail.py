"""The guardrail: roll a serving alias back when a chosen alert fires for it.

An alert names an arm (or, for load failures, an alias); the server knows which alias
each arm serves and passes that mapping in. Only ``candidate`` and ``production`` are
guarded by default. Each firing acts once: a firing is its fingerprint and start time, so
the same firing seen again (``AlertEvaluator.firing()`` on every pass, a replay, a second
route) does nothing, while the same alert firing anew after it resolved acts again.
Nothing here raises for a rollback that cannot happen (no earlier version, the alias
moved meanwhile, a damaged artifact): it is recorded with its reason, for the operator,
and the next evaluation does not retry it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from rlops.core.errors import ConflictError, NotFoundError, RlopsError, ValidationError
from rlops.monitoring.alerts import Alert
from rlops.registry.records import CANDIDATE, PRODUCTION
from rlops.registry.registry import Registry

GuardAction = Literal["rollback", "record"]
Outcome = Literal["rolled_back", "recorded", "no_previous", "no_alias", "conflict", "failed"]
ACTOR = "guardrail"
_REASON_LIMIT = 2000
_REMEMBERED = 4096


@dataclass(frozen=True)
class GuardrailRecord:
    """What the guardrail did about one firing. ``recorded``: the policy only records
    (a dry run); ``from_version``/``to_version`` are set when a rollback happened or,
    for ``recorded``, would have."""

    alert: str
    fingerprint: str
    alias: str
    action: GuardAction
    outcome: Outcome
    reason: str
    at: float
    from_version: str | None = None
    to_version: str | None = None
    detail: str = ""


class Guardrail:
    """Maps alerts to rollbacks of ``name``'s aliases in ``registry``.

    ``policies`` maps an alert name to what to do when it fires; ``alias_of`` maps an
    arm to the alias it serves (``None`` when it serves none); ``app``, when given,
    ignores alerts about other applications. ``actions`` lists every record, oldest first.
    """

    def __init__(
        self,
        registry: Registry,
        name: str,
        policies: Mapping[str, GuardAction],
        *,
        alias_of: Callable[[str], str | None],
        app: str | None = None,
        aliases: Iterable[str] = (CANDIDATE, PRODUCTION),
    ) -> None:
        for alert, action in policies.items():
            if action not in ("rollback", "record"):
                raise ValidationError(
                    f"unknown guardrail action {action!r} for {alert}", field="policies"
                )
        self.registry = registry
        self.name = name
        self.policies = dict(policies)
        self.alias_of = alias_of
        self.app = app
        self.aliases = frozenset(aliases)
        self.actions: list[GuardrailRecord] = []
        self._seen: OrderedDict[tuple[str, float], None] = OrderedDict()
        self._lock = threading.Lock()

    def handle(self, alerts: Iterable[Alert]) -> list[GuardrailRecord]:
        """Act on the firing alerts that a policy covers; what was done, in order."""
        done: list[GuardrailRecord] = []
        with self._lock:
            for alert in alerts:
                record = self._handle(alert)
                if record is not None:
                    done.append(record)
                    self.actions.append(record)
        return done

    def _alias(self, alert: Alert) -> str | None:
        alias = alert.label("alias")
        if alias is None and (arm := alert.label("arm")) is not None:
            alias = self.alias_of(arm)
        return alias if alias in self.aliases else None

    def _handle(self, alert: Alert) -> GuardrailRecord | None:
        action = self.policies.get(alert.name)
        if action is None or alert.state != "firing":
            return None
        if self.app is not None and alert.label("app") != self.app:
            return None
        alias = self._alias(alert)
        if alias is None:
            return None
        firing = (alert.fingerprint, alert.starts_at)
        if firing in self._seen:
            return None
        self._seen[firing] = None
        while len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)
        reason = f"{alert.name}: {alert.annotation('summary') or alert.name}"[:_REASON_LIMIT]
        return self._rollback(alert, alias, action, reason)

    def _rollback(
        self, alert: Alert, alias: str, action: GuardAction, reason: str
    ) -> GuardrailRecord:
        def record(
            outcome: Outcome,
            *,
            from_version: str | None = None,
            to_version: str | None = None,
            detail: str = "",
        ) -> GuardrailRecord:
            return GuardrailRecord(
                alert=alert.name,
                fingerprint=alert.fingerprint,
                alias=alias,
                action=action,
                outcome=outcome,
                reason=reason,
                at=self.registry.clock.now(),
                from_version=from_version,
                to_version=to_version,
                detail=detail,
            )

        try:
            latest, target = self.registry.rollback_target(self.name, alias)
        except NotFoundError as error:
            return record("no_alias", detail=error.message)
        except ValidationError as error:
            return record("no_previous", detail=error.message)
        if action == "record":
            return record("recorded", from_version=latest.to_version, to_version=target)
        try:
            moved = self.registry.rollback(
                self.name,
                alias=alias,
                actor=ACTOR,
                reason=reason,
                expected_revision=latest.revision,
            )
        except ConflictError as error:
            return record("conflict", from_version=latest.to_version, detail=error.message)
        except RlopsError as error:
            return record("failed", from_version=latest.to_version, detail=error.message)
        return record("rolled_back", from_version=latest.to_version, to_version=moved.version)
