"""FeatureSchema: vectors by name, defaults, bounds, and errors that name the field."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from rlops.core import Feature, FeatureSchema, ValidationError

SCHEMA = FeatureSchema.of(
    [
        Feature("inventory", "float", low=0.0),
        Feature("hour", "int", default=12, low=0, high=23),
        Feature("holiday", "bool", default=False),
        Feature("segment", "category", default="regular", categories=("bargain", "regular", "vip")),
    ]
)


def test_vector_is_built_by_name_not_position() -> None:
    a = SCHEMA.vector({"inventory": 5.0, "hour": 3, "holiday": True, "segment": "vip"})
    b = SCHEMA.vector({"segment": "vip", "holiday": True, "hour": 3, "inventory": 5.0})
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    assert SCHEMA.columns == (
        "inventory",
        "hour",
        "holiday",
        "segment=bargain",
        "segment=regular",
        "segment=vip",
    )
    np.testing.assert_array_equal(a, [5, 3, 1, 0, 0, 1])


def test_defaults_fill_missing_optional_features_and_are_reported() -> None:
    resolved = SCHEMA.resolve({"inventory": 1})
    assert resolved.values == {"inventory": 1.0, "hour": 12, "holiday": False, "segment": "regular"}
    assert resolved.defaulted == ("hour", "holiday", "segment")
    np.testing.assert_array_equal(SCHEMA.matrix([{"inventory": 1}, {"inventory": 2}])[:, 0], [1, 2])


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({}, "features.inventory"),
        ({"inventory": "many"}, "features.inventory"),
        ({"inventory": True}, "features.inventory"),
        ({"inventory": math.nan}, "features.inventory"),
        ({"inventory": -1.0}, "features.inventory"),
        ({"inventory": 1, "hour": 2.5}, "features.hour"),
        ({"inventory": 1, "hour": 24}, "features.hour"),
        ({"inventory": 1, "holiday": "no"}, "features.holiday"),
        ({"inventory": 1, "segment": "gold"}, "features.segment"),
        ({"inventory": 1, "colour": 3}, "features.colour"),
    ],
)
def test_bad_values_raise_naming_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        SCHEMA.vector(values)
    assert info.value.field == field


def test_schema_round_trips_and_version_tracks_content() -> None:
    again = FeatureSchema.from_json(SCHEMA.to_json())
    assert again == SCHEMA and again.version == SCHEMA.version
    changed = FeatureSchema.of(
        [*SCHEMA.features[:-1], Feature("segment", "category", categories=("bargain", "regular"))]
    )
    assert changed.version != SCHEMA.version
    tampered = {**SCHEMA.to_json(), "version": "0" * 16}
    with pytest.raises(ValidationError, match="version"):
        FeatureSchema.from_json(tampered)


@pytest.mark.parametrize(
    "make",
    [
        lambda: FeatureSchema.of([]),
        lambda: FeatureSchema.of([Feature("a"), Feature("a")]),
        lambda: Feature("a", "complex"),  # type: ignore[arg-type]
        lambda: Feature("a", "category"),
        lambda: Feature("a", "float", categories=("x",)),
        lambda: Feature("a", low=2.0, high=1.0),
        lambda: Feature("a", default=5.0, high=1.0),
    ],
)
def test_invalid_schemas_are_refused(make: Any) -> None:
    with pytest.raises(ValidationError):
        make()
