"""The decision log protocol: one contract, every backend.

A log holds decisions, outcomes and examples. Appends are batched and all-or-nothing
(a bad record fails the whole batch before anything is written) and idempotent on
``event_id`` / ``outcome_id``. The join worker's state lives in the same database and
each join step is one transaction, so a kill at any point loses and repeats nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from rlops.core.records import Decision, Example, Outcome
from rlops.rewards.join import JoinConfig
from rlops.rewards.spec import RewardFunction

OutcomeStatus = Literal["new", "joined", "late", "quarantined"]
OUTCOME_STATUSES: tuple[OutcomeStatus, ...] = ("new", "joined", "late", "quarantined")


@dataclass(frozen=True, slots=True)
class AppendResult:
    """``inserted`` new records; ``duplicates`` already present (same id) and ignored."""

    inserted: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class LogStats:
    """Counts by status.

    Outcomes: ``new`` (waiting for its decision's window), ``joined`` (in the first
    example), ``late`` (arrived after the join, in a later revision), ``quarantined``
    (no decision with its event id yet). Every received outcome is in exactly one.
    """

    decisions: int
    decisions_joined: int
    outcomes: Mapping[str, int]
    duplicate_decisions: int
    duplicate_outcomes: int
    examples: int
    examples_current: int
    examples_defaulted: int
    examples_late: int
    reward_specs: Mapping[str, int] = field(default_factory=dict)

    @property
    def decisions_pending(self) -> int:
        return self.decisions - self.decisions_joined

    @property
    def outcomes_received(self) -> int:
        return sum(self.outcomes.values())


@dataclass(frozen=True, slots=True)
class JoinStepReport:
    """What one join transaction did."""

    joined: int = 0
    defaulted: int = 0
    late_examples: int = 0
    late_outcomes: int = 0
    quarantined: int = 0
    released: int = 0
    skipped: int = 0  # steps not taken: another join was running (``wait=False``)

    @property
    def work(self) -> int:
        return self.joined + self.late_examples + self.quarantined + self.released

    def __add__(self, other: JoinStepReport) -> JoinStepReport:
        return JoinStepReport(
            joined=self.joined + other.joined,
            defaulted=self.defaulted + other.defaulted,
            late_examples=self.late_examples + other.late_examples,
            late_outcomes=self.late_outcomes + other.late_outcomes,
            quarantined=self.quarantined + other.quarantined,
            released=self.released + other.released,
            skipped=self.skipped + other.skipped,
        )


# Called at named points inside a join transaction; tests raise from it to simulate a kill.
Fault = Callable[[str], None]


class DecisionLog(Protocol):
    """What every log backend provides (SQLite embedded, PostgreSQL in production)."""

    url: str

    def append_decisions(self, decisions: Sequence[Decision]) -> AppendResult: ...

    def append_outcomes(self, outcomes: Sequence[Outcome]) -> AppendResult: ...

    def decisions(
        self,
        *,
        start: float | None = None,
        end: float | None = None,
        app: str | None = None,
        limit: int | None = None,
    ) -> list[Decision]: ...

    def outcomes(
        self,
        *,
        start: float | None = None,
        end: float | None = None,
        event_id: str | None = None,
        status: OutcomeStatus | None = None,
        limit: int | None = None,
    ) -> list[Outcome]: ...

    def outcome_status(self, outcome_id: str) -> OutcomeStatus | None: ...

    def examples(
        self,
        *,
        app: str | None = None,
        reward_spec: str | None = None,
        current_only: bool = True,
        start: float | None = None,
        end: float | None = None,
    ) -> list[Example]: ...

    def examples_joined(
        self,
        *,
        since: float,
        app: str | None = None,
        reward_spec: str | None = None,
        current_only: bool = True,
        event_ids: Sequence[str] | None = None,
    ) -> list[Example]: ...

    def count_decisions(
        self,
        *,
        start: float | None = None,
        end: float | None = None,
        app: str | None = None,
        arm: str | None = None,
        policy_version: str | None = None,
    ) -> int: ...

    def count_outcomes(self, *, start: float | None = None, end: float | None = None) -> int: ...

    def count_examples(
        self, *, app: str | None = None, reward_spec: str | None = None, since: float | None = None
    ) -> int: ...

    def stats(self) -> LogStats: ...

    def join_step(
        self,
        config: JoinConfig,
        *,
        now: float,
        batch_size: int = 1000,
        fault: Fault | None = None,
        wait: bool = True,
    ) -> JoinStepReport: ...

    def rescore(
        self, *, app: str, source_spec: str, reward: RewardFunction, batch_size: int = 5000
    ) -> int: ...

    def export_jsonl(
        self,
        path: Path,
        *,
        kind: Literal["decisions", "outcomes", "examples"],
        start: float | None = None,
        end: float | None = None,
    ) -> int: ...

    def iter_decisions(
        self, *, start: float | None = None, end: float | None = None, page: int = 5000
    ) -> Iterator[Decision]: ...

    def close(self) -> None: ...
