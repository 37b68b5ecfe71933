"""Canonical JSON and content hashes.

Hashes (action catalogs, reward specs, snapshots) must be identical across processes,
machines and Python versions, so they are computed over canonical JSON: sorted keys,
no whitespace, floats in their shortest round-trip form, UTF-8.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import orjson


def _check_finite(value: Any, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path}: non-finite number {value!r} cannot be hashed")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite(item, f"{path}[{i}]")


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` (JSON types, tuples allowed) to canonical bytes."""
    _check_finite(value, "$")
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def content_hash(value: Any, *, length: int = 16) -> str:
    """Hex sha256 of the canonical JSON of ``value``, truncated to ``length`` characters."""
    return hashlib.sha256(canonical_json(value)).hexdigest()[:length]
