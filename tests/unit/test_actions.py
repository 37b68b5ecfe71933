"""ActionCatalog: content-hashed versions; old versions stay resolvable."""

from __future__ import annotations

import numpy as np
import pytest

from rlops.core import Action, ActionCatalog, NotFoundError, ValidationError

NAMES = ("equity", "bonds")


def catalog() -> ActionCatalog:
    return ActionCatalog.of([Action("safe", (0.2, 0.8)), Action("bold", (0.9, 0.1))], NAMES)


def test_version_is_a_content_hash_independent_of_construction() -> None:
    assert catalog().version == catalog().version
    reordered = ActionCatalog.of([Action("bold", (0.9, 0.1)), Action("safe", (0.2, 0.8))], NAMES)
    assert reordered.version != catalog().version  # order is part of the contract
    np.testing.assert_array_equal(
        catalog().feature_matrix(), np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32)
    )


def test_add_and_retire_give_new_versions_and_keep_old_ones_resolvable() -> None:
    v1 = catalog()
    v2 = v1.add(Action("tech", (1.0, 0.0)))
    v3 = v2.retire("safe")
    assert len({v1.version, v2.version, v3.version}) == 3
    assert v3.ids == ("bold", "tech")
    assert v3.resolve(v1.version).ids == ("safe", "bold")
    assert v3.resolve(v2.version).ids == ("safe", "bold", "tech")
    assert v3.resolve(v1.version).version == v1.version
    restored = type(v3).from_json(v3.to_json())
    assert restored == v3 and restored.resolve(v1.version).ids == v1.ids
    with pytest.raises(NotFoundError):
        v3.resolve("0" * 16)


def test_bad_catalogs_are_refused() -> None:
    with pytest.raises(ValidationError, match="duplicate"):
        ActionCatalog.of([Action("a", (1.0,)), Action("a", (2.0,))], ("x",))
    with pytest.raises(ValidationError, match="features"):
        ActionCatalog.of([Action("a", (1.0, 2.0))], ("x",))
    with pytest.raises(ValidationError, match="already"):
        catalog().add(Action("safe", (0.2, 0.8)))
    with pytest.raises(ValidationError, match="changed"):
        catalog().retire("safe").add(Action("safe", (0.5, 0.5)))
    with pytest.raises(ValidationError):
        Action("a", (float("nan"),))
    with pytest.raises(ValidationError):
        ActionCatalog.of([], ())
