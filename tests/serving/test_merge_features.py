"""Merging stored features with the request's context: the request wins, defaults are named."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlops.core.errors import ValidationError
from rlops.core.features import Feature, FeatureSchema, FeatureValue
from rlops.serving.feature_store import merge_features

SCHEMA = FeatureSchema.of(
    [
        Feature("price", low=0.0, high=10.0, default=1.0),
        Feature("views", "int", low=0, high=50, default=0),
        Feature("vip", "bool", default=False),
        Feature("segment", "category", default="regular", categories=("regular", "vip")),
    ]
)


def test_the_request_wins_and_defaults_are_named() -> None:
    values, defaulted = merge_features(
        SCHEMA, {"price": 2.0, "views": 3}, {"price": 5, "segment": "vip"}
    )
    assert values == {"price": 5.0, "views": 3, "vip": False, "segment": "vip"}
    assert type(values["price"]) is float  # checked: the int 5 became the float feature's type
    assert defaulted == ("vip",)


def test_no_stored_row_defaults_what_the_request_leaves_out() -> None:
    values, defaulted = merge_features(SCHEMA, None, {"views": 7})
    assert values == {"price": 1.0, "views": 7, "vip": False, "segment": "regular"}
    assert defaulted == ("price", "vip", "segment")


def test_a_none_in_the_context_means_not_provided() -> None:
    values, defaulted = merge_features(SCHEMA, {"price": 3.0}, {"price": None})
    assert values["price"] == 3.0 and "price" not in defaulted


def test_bad_or_unknown_stored_values_are_defaulted_not_errors() -> None:
    stored: dict[str, FeatureValue] = {"price": -3.0, "views": "lots", "vip": 1, "colour": "red"}
    values, defaulted = merge_features(SCHEMA, stored, {})
    assert values == {"price": 1.0, "views": 0, "vip": True, "segment": "regular"}
    assert defaulted == ("price", "views", "segment")


@pytest.mark.parametrize(
    ("context", "field", "words"),
    [
        ({"colour": "red"}, "context.colour", "unknown feature 'colour'"),
        ({"price": 1.0, "zz": 1, "aa": 2}, "context.aa", "unknown feature 'aa'"),
        ({"price": "cheap"}, "context.price", "must be a number"),
        ({"price": 11.0}, "context.price", "outside"),
        ({"views": 2.5}, "context.views", "integer"),
        ({"vip": "yes"}, "context.vip", "boolean"),
        ({"segment": "gold"}, "context.segment", "must be one of"),
    ],
)
def test_a_bad_context_names_its_field(context: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        merge_features(SCHEMA, {"price": 2.0}, context)
    assert caught.value.field == field and words in caught.value.message


def test_a_required_feature_comes_from_the_context_or_the_store() -> None:
    schema = FeatureSchema.of([Feature("age", low=0.0), Feature("score", default=0.5)])
    assert merge_features(schema, {"age": 30.0}, {}) == ({"age": 30.0, "score": 0.5}, ("score",))
    assert merge_features(schema, {"age": -1.0}, {"age": 4}) == (
        {"age": 4.0, "score": 0.5},
        ("score",),
    )
    with pytest.raises(ValidationError) as caught:
        merge_features(schema, {"age": -1.0}, {})  # a bad stored value is no value
    assert caught.value.field == "context.age"


# Any value, valid or not, for each schema feature (and names the schema lacks).
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 60),
    st.floats(-5.0, 15.0, allow_nan=False),
    st.sampled_from(["regular", "vip", "gold"]),
)
STORED = st.dictionaries(st.sampled_from([*SCHEMA.names, "extra"]), ANY_VALUE)
VALID_CONTEXT = st.fixed_dictionaries(
    {},
    optional={
        "price": st.floats(0.0, 10.0),
        "views": st.integers(0, 50),
        "vip": st.booleans(),
        "segment": st.sampled_from(["regular", "vip"]),
    },
)


def _valid(name: str, value: object) -> bool:
    try:
        SCHEMA[name].check(value)
    except ValidationError:
        return False
    return True


@given(stored=st.none() | STORED, context=VALID_CONTEXT)
def test_merge_agrees_with_schema_resolve(
    stored: dict[str, object] | None, context: dict[str, object]
) -> None:
    """Every feature gets a value; a name is defaulted exactly when neither side gave a
    valid one; and the result is the schema's own resolve of the valid stored values
    overlaid with the context."""
    values, defaulted = merge_features(SCHEMA, stored, context)  # type: ignore[arg-type]  # any values
    usable = {
        name: value
        for name, value in (stored or {}).items()
        if name in SCHEMA.names and value is not None and _valid(name, value)
    }
    resolved = SCHEMA.resolve({**usable, **context})
    assert list(values) == list(SCHEMA.names)
    assert values == resolved.values
    assert defaulted == resolved.defaulted
    assert set(defaulted).isdisjoint(context) and set(defaulted).isdisjoint(usable)
