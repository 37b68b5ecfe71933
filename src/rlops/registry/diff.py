"""What differs between two versions' manifests, field by field.

Manifests are compared as flattened JSON (``params.head.kind``, ``arrays.w0.shape``...),
so a reviewer sees exactly which parameters, arrays, schema, catalog, reward, data or
evaluation numbers changed between the version serving and a candidate. Long lists (the
feature schema, the action catalog) are summarised by their content version, which
changes whenever they do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlops.policies.artifact import Manifest


@dataclass(frozen=True, slots=True)
class Change:
    """One field that differs; ``None`` on a side where the field is absent."""

    field: str
    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "before": self.before, "after": self.after}


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten(value[key], f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


def _summary(manifest: Manifest) -> dict[str, Any]:
    data = manifest.to_json()
    data["feature_schema"] = {
        "version": manifest.feature_schema.version,
        "columns": len(manifest.feature_schema.columns),
    }
    data["action_catalog"] = {
        "version": manifest.action_catalog.version,
        "actions": ",".join(manifest.action_catalog.ids),
    }
    return data


def diff_manifests(before: Manifest, after: Manifest) -> list[Change]:
    """Every flattened field whose value differs, in field order."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(_summary(before), "", a)
    _flatten(_summary(after), "", b)
    return [
        Change(key, a.get(key), b.get(key))
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]
