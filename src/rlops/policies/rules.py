"""The baseline rule engines as a servable, saveable policy family.

The rules themselves live with the simulators (:mod:`rlops.sim.baselines`), which need
them as the control group; this module gives them the artifact contract so a rule engine
is registered, versioned and served exactly like a learned policy (it is the fallback
and the first ``production`` version of every application).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.core.errors import ValidationError
from rlops.core.features import FeatureSchema
from rlops.policies.contract import Features, Probs
from rlops.sim.baselines import AdvisorRules, FixedAction, PricingRules, UniformRandom

RULES: dict[str, type[Any]] = {
    "pricing": PricingRules,
    "advisor": AdvisorRules,
    "fixed": FixedAction,
    "uniform": UniformRandom,
}


@dataclass(frozen=True, eq=False)
class RulesPolicy:
    """A named rule engine with its settings; ``schema`` is the one its columns come from."""

    family: ClassVar[str] = "rules"
    rule: str
    settings: dict[str, Any]
    schema: FeatureSchema | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValidationError(
                f"unknown rule engine {self.rule!r}; known {list(RULES)}", field="rule"
            )
        kwargs = dict(self.settings)
        if self.rule in ("pricing", "advisor"):
            if self.schema is None:
                raise ValidationError(
                    f"the {self.rule} rules need a feature schema", field="schema"
                )
            kwargs["schema"] = self.schema
        try:
            engine = RULES[self.rule](
                **{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
            )
        except TypeError as exc:
            raise ValidationError(
                f"bad settings for the {self.rule} rules: {exc}", field="settings"
            ) from None
        object.__setattr__(self, "_engine", engine)

    @classmethod
    def of(cls, engine: Any) -> RulesPolicy:
        """Wrap a rule engine instance from :mod:`rlops.sim.baselines`."""
        for name, kind in RULES.items():
            if isinstance(engine, kind):
                settings = {k: v for k, v in asdict(engine).items() if k != "schema"}
                schema = getattr(engine, "schema", None)
                return cls(rule=name, settings=settings, schema=schema)
        raise ValidationError(f"{type(engine).__name__} is not a known rule engine", field="rule")

    def probabilities(self, features: Features, actions: ActionCatalog) -> Probs:
        out: Probs = self._engine.probabilities(features, actions)  # type: ignore[attr-defined]
        return out

    def to_artifact(self) -> tuple[dict[str, Any], dict[str, npt.NDArray[np.float64]]]:
        settings = {k: list(v) if isinstance(v, tuple) else v for k, v in self.settings.items()}
        schema = None if self.schema is None else self.schema.to_json()
        return {"rule": self.rule, "settings": settings, "schema": schema}, {}

    @classmethod
    def from_artifact(
        cls, params: dict[str, Any], arrays: dict[str, npt.NDArray[np.float64]]
    ) -> RulesPolicy:
        schema = None if params.get("schema") is None else FeatureSchema.from_json(params["schema"])
        return cls(rule=params["rule"], settings=dict(params["settings"]), schema=schema)
