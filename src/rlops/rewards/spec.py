"""Versioned, hashed reward functions built from a declarative spec.

A reward is a weighted sum of named terms; each term reads outcome signals through one
of a few registered term kinds. The spec (terms, weights, parameters, version and the
version of the term code) has a content hash that is stable across processes and changes
when any part changes: every example records the hash of the reward that scored it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rlops.core.actions import check_id
from rlops.core.canonical import content_hash
from rlops.core.errors import ValidationError

# Bump when the arithmetic of any term kind changes: old hashes then stop matching.
TERM_CODE_VERSION = "terms-1"

TermFn = Callable[[Mapping[str, float], Mapping[str, Any]], float]


def _get(signals: Mapping[str, float], params: Mapping[str, Any], key: str) -> float:
    """A signal's value, or the term's ``default`` (0) when the outcomes did not carry it."""
    return float(signals.get(params[key], params.get("default", 0.0)))


def _signal(signals: Mapping[str, float], params: Mapping[str, Any]) -> float:
    return _get(signals, params, "signal")


def _ratio(signals: Mapping[str, float], params: Mapping[str, Any]) -> float:
    # eps keeps a zero-volatility window finite: return / (0 + 1e-8).
    numerator = _get(signals, params, "numerator")
    denominator = _get(signals, params, "denominator")
    return numerator / (denominator + float(params.get("eps", 0.0)))


def _excess(signals: Mapping[str, float], params: Mapping[str, Any]) -> float:
    return max(0.0, _get(signals, params, "signal") - float(params["threshold"]))


def _product(signals: Mapping[str, float], params: Mapping[str, Any]) -> float:
    return _get(signals, params, "left") * _get(signals, params, "right")


TERM_KINDS: dict[str, tuple[TermFn, tuple[str, ...]]] = {
    "signal": (_signal, ("signal",)),
    "ratio": (_ratio, ("numerator", "denominator")),
    "excess": (_excess, ("signal", "threshold")),
    "product": (_product, ("left", "right")),
}


@dataclass(frozen=True, slots=True)
class RewardTerm:
    """``weight * kind(signals, params)``; the weighted value is the term's component."""

    name: str
    kind: str
    weight: float
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_id(self.name, "term.name")
        if self.kind not in TERM_KINDS:
            raise ValidationError(
                f"term {self.name!r}: unknown kind {self.kind!r}; known: {sorted(TERM_KINDS)}",
                field=f"terms.{self.name}.kind",
            )
        for required in TERM_KINDS[self.kind][1]:
            if required not in self.params:
                raise ValidationError(
                    f"term {self.name!r} of kind {self.kind!r} needs parameter {required!r}",
                    field=f"terms.{self.name}.params.{required}",
                )
        object.__setattr__(self, "weight", float(self.weight))
        object.__setattr__(self, "params", dict(self.params))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "weight": self.weight,
            "params": dict(self.params),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RewardTerm:
        return cls(data["name"], data["kind"], data["weight"], data.get("params", {}))


@dataclass(frozen=True, slots=True)
class RewardSpec:
    """Everything that determines a reward's value, hashed into ``hash``."""

    name: str
    version: str
    terms: tuple[RewardTerm, ...]
    code_version: str = TERM_CODE_VERSION
    hash: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        check_id(self.name, "reward.name")
        check_id(self.version, "reward.version")
        terms = tuple(self.terms)
        if not terms:
            raise ValidationError("a reward needs at least one term", field="terms")
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise ValidationError("reward term names must be unique", field="terms")
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "hash", content_hash(self._content()))

    def _content(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "code_version": self.code_version,
            "terms": [t.to_json() for t in self.terms],
        }

    def to_json(self) -> dict[str, Any]:
        return {**self._content(), "hash": self.hash}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RewardSpec:
        spec = cls(
            name=data["name"],
            version=data["version"],
            terms=tuple(RewardTerm.from_json(t) for t in data["terms"]),
            code_version=data.get("code_version", TERM_CODE_VERSION),
        )
        if data.get("hash") not in (None, spec.hash):
            raise ValidationError(
                f"reward hash {data['hash']!r} does not match its spec ({spec.hash})",
                field="hash",
            )
        return spec


@dataclass(frozen=True, slots=True)
class RewardResult:
    total: float
    components: dict[str, float]


@dataclass(frozen=True, slots=True)
class RewardFunction:
    """A callable reward: signals in, total and per-term components out."""

    spec: RewardSpec

    @property
    def hash(self) -> str:
        return self.spec.hash

    def __call__(self, signals: Mapping[str, float]) -> RewardResult:
        components = {
            term.name: term.weight * TERM_KINDS[term.kind][0](signals, term.params)
            for term in self.spec.terms
        }
        return RewardResult(total=float(sum(components.values())), components=components)
