"""What an online bandit updater follows, how often it publishes, and within what bound."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from rlops.apps.spaces import APPS
from rlops.core.actions import check_id
from rlops.core.errors import ValidationError
from rlops.registry.records import PRODUCTION


def _positive_int(value: object, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"{name} must be an integer >= {minimum}, got {value!r}", field=name)


@dataclass(frozen=True, slots=True)
class OnlineUpdateConfig:
    """One updater: ``name``'s version at ``alias`` learns from ``app``'s joined examples.

    Cadence: publish after ``every_examples`` examples folded in and/or every
    ``every_seconds`` (at least one of them); never before the chain has folded
    ``min_examples``. Trust region: the gate's check, mean ``KL(candidate || rules)``
    nats per context with the rules floored at ``baseline_floor``, over the last
    ``trust_contexts`` contexts, at most ``kl_bound``. ``reward_spec``: the reward
    version to learn from (default: the app's join reward). ``since``: where a new chain
    starts reading the join (examples joined earlier are taken to be in the starting
    model); a restart resumes from the cursor of the last version published instead.
    """

    app: str
    name: str
    alias: str = PRODUCTION
    every_examples: int | None = 1000
    every_seconds: float | None = None
    min_examples: int = 100
    kl_bound: float = 0.5
    baseline_floor: float = 0.05
    trust_contexts: int = 1000
    reward_spec: str | None = None
    since: float = 0.0
    actor: str = "rlops-online"

    def __post_init__(self) -> None:
        if self.app not in APPS:
            raise ValidationError(f"unknown app {self.app!r}; known {list(APPS)}", field="app")
        check_id(self.name, "name")
        check_id(self.alias, "alias")
        if self.every_examples is None and self.every_seconds is None:
            raise ValidationError(
                "set every_examples, every_seconds or both: the updater needs a cadence",
                field="every_examples",
            )
        if self.every_examples is not None:
            _positive_int(self.every_examples, "every_examples", minimum=1)
        if self.every_seconds is not None and not (
            isinstance(self.every_seconds, int | float)
            and math.isfinite(self.every_seconds)
            and self.every_seconds > 0
        ):
            raise ValidationError("every_seconds must be a positive number", field="every_seconds")
        _positive_int(self.min_examples, "min_examples", minimum=1)
        _positive_int(self.trust_contexts, "trust_contexts", minimum=1)
        if not (math.isfinite(self.kl_bound) and self.kl_bound >= 0.0):
            raise ValidationError("kl_bound must be a finite number >= 0", field="kl_bound")
        if not 0.0 <= self.baseline_floor <= 1.0:
            raise ValidationError("baseline_floor must lie in [0, 1]", field="baseline_floor")
        if not math.isfinite(self.since):
            raise ValidationError("since must be a finite time", field="since")
        if not self.actor.strip():
            raise ValidationError("actor must not be empty", field="actor")

    def resolved_reward_spec(self) -> str:
        """The reward version learned from: the configured one, or the app's join reward."""
        if self.reward_spec is not None:
            return self.reward_spec
        from rlops.apps.defaults import join_configs

        return join_configs()[self.app].reward.hash

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
