"""What the retraining loop remembers between steps and restarts, and its journal.

The state is one small JSON file replaced atomically after each step that changes it,
so a loop killed at any point resumes from its last committed step: a retraining cycle
interrupted before its state was written runs again (registering a version is
idempotent and a gate record is only advisory), and a canary in progress stays in
progress. The journal is append-only JSON lines, one event per decision the loop took,
with the reason and the figures behind it: the answer to "why is this version serving?".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from rlops.core.errors import ValidationError
from rlops.core.files import write_atomic


@dataclass(frozen=True, slots=True)
class CanaryRun:
    """A candidate on the canary arm since ``started_at``, against ``production``."""

    version: str
    started_at: float
    production: str

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "started_at": self.started_at,
            "production": self.production,
        }


@dataclass(frozen=True, slots=True)
class LoopState:
    """``trained_through``: the newest ``joined_at`` a training snapshot included;
    ``failures``: retrainings that failed in a row since the last one that ran."""

    trained_through: float | None = None
    last_run_at: float | None = None
    cycles: int = 0
    canary: CanaryRun | None = None
    failures: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "trained_through": self.trained_through,
            "last_run_at": self.last_run_at,
            "cycles": self.cycles,
            "canary": None if self.canary is None else self.canary.to_json(),
            "failures": self.failures,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoopState:
        canary = data.get("canary")
        return cls(
            trained_through=data.get("trained_through"),
            last_run_at=data.get("last_run_at"),
            cycles=int(data.get("cycles", 0)),
            canary=None if canary is None else CanaryRun(**canary),
            failures=int(data.get("failures", 0)),
        )

    def with_canary(self, canary: CanaryRun | None) -> LoopState:
        return replace(self, canary=canary)


@dataclass(frozen=True, slots=True)
class LoopEvent:
    """One thing the loop did and why (``kind`` e.g. ``gate_failed``, ``promoted``)."""

    at: float
    kind: str
    version: str | None
    reason: str
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "kind": self.kind,
            "version": self.version,
            "reason": self.reason,
            "details": self.details,
        }


class LoopFiles:
    """``state.json`` and ``events.jsonl`` in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.state_path = self.directory / "state.json"
        self.events_path = self.directory / "events.jsonl"

    def load(self) -> LoopState:
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return LoopState()
        try:
            return LoopState.from_json(orjson.loads(raw))
        except (orjson.JSONDecodeError, TypeError, KeyError) as error:
            raise ValidationError(
                f"{self.state_path} is not a loop state: {error}", field="state"
            ) from None

    def save(self, state: LoopState) -> None:
        write_atomic(self.state_path, orjson.dumps(state.to_json(), option=orjson.OPT_INDENT_2))

    def record(self, event: LoopEvent) -> None:
        """Append one event and fsync it: the journal is the loop's audit trail."""
        line = orjson.dumps(event.to_json(), option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        with open(self.events_path, "ab") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())

    def events(self) -> list[LoopEvent]:
        try:
            lines = self.events_path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        return [LoopEvent(**orjson.loads(line)) for line in lines if line.strip()]
