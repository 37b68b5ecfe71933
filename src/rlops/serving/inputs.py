"""Checks of what a caller sends before it joins a micro-batch.

A bad value must be refused for its own request, naming the field; once a request is in
a batch, its values are trusted (decisions are built without re-checking them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlops.core.errors import ValidationError
from rlops.core.features import FeatureSchema, FeatureValue


def check_unit_id(unit_id: object, field: str = "unit_id") -> str:
    """1-256 characters of UTF-8 text without NUL, as the log stores it."""
    if (
        not isinstance(unit_id, str)
        or not 0 < len(unit_id) <= 256
        or "\x00" in unit_id
        or (not unit_id.isprintable() and not _encodes(unit_id))
    ):
        raise ValidationError(
            f"{field} must be 1-256 characters of text without NUL, got {unit_id!r:.80}",
            field=field,
        )
    return unit_id


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_context(schema: FeatureSchema, context: Mapping[str, Any]) -> dict[str, FeatureValue]:
    """The request's context checked by name against the app's schema (nothing defaulted)."""
    out: dict[str, FeatureValue] = {}
    names = schema.names
    for name, value in context.items():
        if name not in names:
            raise ValidationError(
                f"context.{name}: unknown feature; known: {', '.join(names)}",
                field=f"context.{name}",
            )
        feature = schema[name]
        if feature.kind == "bool" and not isinstance(value, bool):
            # over HTTP a flag is true or false, as the OpenAPI document says (the log's
            # reader also takes 0/1, for data written by other tools)
            raise ValidationError(
                f"context.{name}: must be true or false, got {value!r}", field=f"context.{name}"
            )
        try:
            out[name] = feature.check(value)
        except ValidationError as error:
            raise ValidationError(
                f"context.{name}: {error.message}", field=f"context.{name}"
            ) from None
    return out
