"""Actions and the versioned, content-hashed action catalog.

Actions are identified by stable string ids and described by feature vectors, so a model
that scores actions by their features can score an action added after it was trained.
A catalog is immutable: adding or retiring an action returns a new catalog with a new
version, and every earlier version stays resolvable from it (logs name the version).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rlops.core.canonical import content_hash
from rlops.core.errors import NotFoundError, ValidationError

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+\-]{0,127}$")


def check_id(value: object, field_name: str) -> str:
    """Ids are short printable tokens: they travel in URLs, logs and metric labels."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise ValidationError(
            f"{field_name} must be 1-128 characters of letters, digits and _.:+- "
            f"starting with a letter or digit, got {value!r}",
            field=field_name,
        )
    return value


@dataclass(frozen=True, slots=True)
class Action:
    """One action: a stable id and its feature vector (aligned to the catalog's names)."""

    id: str
    features: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        check_id(self.id, "action.id")
        values = tuple(float(v) for v in self.features)
        for i, v in enumerate(values):
            if not math.isfinite(v):
                raise ValidationError(
                    f"action {self.id!r} feature {i} is not finite: {v!r}",
                    field=f"actions.{self.id}.features",
                )
        object.__setattr__(self, "features", values)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "features": list(self.features)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Action:
        return cls(id=data["id"], features=tuple(data.get("features", ())))


def _version_of(feature_names: Sequence[str], actions: Sequence[Action]) -> str:
    return content_hash(
        {"feature_names": list(feature_names), "actions": [a.to_json() for a in actions]}
    )


@dataclass(frozen=True, slots=True)
class ActionCatalog:
    """An ordered set of actions with a content-hashed version.

    ``archive`` holds every action ever in the catalog and ``history`` the ordered ids of
    every earlier version, so :meth:`resolve` can rebuild any version named in a log.
    """

    actions: tuple[Action, ...]
    feature_names: tuple[str, ...] = ()
    archive: tuple[Action, ...] = ()
    history: tuple[tuple[str, tuple[str, ...]], ...] = ()
    version: str = field(default="", compare=False)
    # Built once: the rule engines look actions up by feature value on every batch.
    _ids: tuple[str, ...] = field(default=(), compare=False, repr=False)
    _matrix: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, 0), np.float32), compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if not self.actions:
            raise ValidationError("an action catalog needs at least one action", field="actions")
        names = tuple(self.feature_names)
        if len(set(names)) != len(names):
            raise ValidationError("action feature names must be unique", field="feature_names")
        seen: set[str] = set()
        for action in self.actions:
            if action.id in seen:
                raise ValidationError(f"duplicate action id {action.id!r}", field="actions")
            seen.add(action.id)
            if len(action.features) != len(names):
                raise ValidationError(
                    f"action {action.id!r} has {len(action.features)} features, "
                    f"the catalog names {len(names)}",
                    field=f"actions.{action.id}.features",
                )
        archive = {a.id: a for a in self.archive}
        for action in self.actions:
            if action.id in archive and archive[action.id] != action:
                raise ValidationError(
                    f"action {action.id!r} changed its features; give it a new id",
                    field=f"actions.{action.id}",
                )
            archive[action.id] = action
        object.__setattr__(self, "feature_names", names)
        object.__setattr__(self, "archive", tuple(sorted(archive.values(), key=lambda a: a.id)))
        object.__setattr__(self, "version", _version_of(names, self.actions))
        object.__setattr__(self, "_ids", tuple(a.id for a in self.actions))
        matrix = np.array([a.features for a in self.actions], dtype=np.float32)
        object.__setattr__(self, "_matrix", matrix.reshape(len(self.actions), len(names)))

    @classmethod
    def of(cls, actions: Iterable[Action], feature_names: Sequence[str] = ()) -> ActionCatalog:
        return cls(actions=tuple(actions), feature_names=tuple(feature_names))

    @property
    def ids(self) -> tuple[str, ...]:
        return self._ids

    def __len__(self) -> int:
        return len(self.actions)

    def __contains__(self, action_id: object) -> bool:
        return any(a.id == action_id for a in self.actions)

    def index(self, action_id: str) -> int:
        for i, action in enumerate(self.actions):
            if action.id == action_id:
                return i
        raise NotFoundError(f"no action {action_id!r} in catalog {self.version}", field="action_id")

    def feature_matrix(self) -> npt.NDArray[np.float32]:
        """Action features as a ``(k, m)`` float32 array in catalog order (a copy)."""
        return self._matrix.copy()

    def _successor(self, actions: tuple[Action, ...]) -> ActionCatalog:
        history = (*self.history, (self.version, self.ids))
        return ActionCatalog(
            actions=actions,
            feature_names=self.feature_names,
            archive=self.archive,
            history=history,
        )

    def add(self, action: Action) -> ActionCatalog:
        """A new version with ``action`` appended."""
        if action.id in self:
            raise ValidationError(f"action {action.id!r} is already in the catalog", field="id")
        return self._successor((*self.actions, action))

    def retire(self, action_id: str) -> ActionCatalog:
        """A new version without ``action_id``; the old version stays resolvable."""
        self.index(action_id)
        return self._successor(tuple(a for a in self.actions if a.id != action_id))

    def resolve(self, version: str) -> ActionCatalog:
        """The catalog as it was at ``version`` (this one or any ancestor)."""
        if version == self.version:
            return self
        by_id = {a.id: a for a in self.archive}
        for i, (old_version, ids) in enumerate(self.history):
            if old_version == version:
                earlier = self.history[:i]
                known = {x for _, old_ids in earlier for x in old_ids} | set(ids)
                return ActionCatalog(
                    actions=tuple(by_id[x] for x in ids),
                    feature_names=self.feature_names,
                    archive=tuple(by_id[x] for x in sorted(known)),
                    history=earlier,
                )
        raise NotFoundError(f"catalog version {version!r} is unknown", field="version")

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "feature_names": list(self.feature_names),
            "actions": [a.to_json() for a in self.actions],
            "archive": [a.to_json() for a in self.archive],
            "history": [{"version": v, "ids": list(ids)} for v, ids in self.history],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ActionCatalog:
        catalog = cls(
            actions=tuple(Action.from_json(a) for a in data["actions"]),
            feature_names=tuple(data.get("feature_names", ())),
            archive=tuple(Action.from_json(a) for a in data.get("archive", ())),
            history=tuple((h["version"], tuple(h["ids"])) for h in data.get("history", ())),
        )
        stated = data.get("version")
        if stated is not None and stated != catalog.version:
            raise ValidationError(
                f"catalog version {stated!r} does not match its content ({catalog.version})",
                field="version",
            )
        return catalog
