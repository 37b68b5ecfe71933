"""Where an online learner stands in the join's output, recorded in each version it publishes.

The log stamps every example with the time of the join step that wrote it
(``joined_at``), and one step stamps all its examples with the same time. So the cursor
is that time plus the keys already taken *at* that time: the next read asks for
``joined_at >= time`` and skips those keys. Nothing is read twice and nothing joined
later is skipped, even when several join steps share one clock reading.

A published version's training config holds the cursor as of its own state, so an
updater restarted from that version resumes exactly where the state it loads stops.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rlops.core.errors import ValidationError
from rlops.core.records import Example

Key = tuple[str, int]  # (event_id, revision)


@dataclass(frozen=True, slots=True)
class JoinCursor:
    """``time``: the latest ``joined_at`` folded in; ``taken``: the keys folded at it.

    ``origin``: where the chain of online versions began (examples joined before it are
    taken to be in the starting model). ``examples`` and ``revisions`` count what the
    chain has folded in: new events, and late revisions that replaced a reward.
    """

    origin: float
    time: float
    taken: frozenset[Key] = frozenset()
    examples: int = 0
    revisions: int = 0

    @classmethod
    def start(cls, origin: float) -> JoinCursor:
        return cls(origin=origin, time=origin)

    def is_new(self, example: Example) -> bool:
        """Whether ``example`` (read with ``joined_at >= time``) is past this cursor."""
        return example.joined_at > self.time or (
            (example.event_id, example.revision) not in self.taken
        )

    def was_taken(self, example: Example) -> bool:
        """Whether this cursor has passed ``example`` (joined before it, or taken at it)."""
        return example.joined_at < self.time or (
            example.joined_at == self.time and (example.event_id, example.revision) in self.taken
        )

    def advance(self, examples: Iterable[Example], *, new: int, revised: int) -> JoinCursor:
        """The cursor after taking ``examples`` (read in join order, all past this one)."""
        time, taken = self.time, set(self.taken)
        for e in examples:
            if e.joined_at > time:
                time, taken = e.joined_at, set()
            taken.add((e.event_id, e.revision))
        return JoinCursor(
            origin=self.origin,
            time=time,
            taken=frozenset(taken),
            examples=self.examples + new,
            revisions=self.revisions + revised,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "time": self.time,
            "taken": sorted([e, r] for e, r in self.taken),
            "examples": self.examples,
            "revisions": self.revisions,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JoinCursor:
        try:
            return cls(
                origin=float(data["origin"]),
                time=float(data["time"]),
                taken=frozenset((str(e), int(r)) for e, r in data["taken"]),
                examples=int(data["examples"]),
                revisions=int(data["revisions"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"a malformed online cursor: {exc!r}", field="cursor") from None
