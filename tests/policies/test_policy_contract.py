"""The contract every policy family keeps: shapes, distributions, masks, save/load, seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlops.core.actions import Action
from rlops.core.errors import NotFoundError, ValidationError
from rlops.policies import BilinearPolicy, LinearPolicy, MLPPolicy, load_policy, save_policy
from rlops.policies.stack import PolicyStack, SafetyConfig
from rlops.safety import StaticMask
from tests.policies.conftest import FAMILIES, Case, contexts


def test_rows_are_distributions_over_the_catalog(family: tuple[str, Case]) -> None:
    _, (policy, schema, catalog) = family
    x = contexts(schema, 64)
    probs = policy.probabilities(x, catalog)
    assert probs.shape == (64, len(catalog))
    assert probs.dtype == np.float64
    assert np.all(probs >= 0.0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)


def test_one_context_is_one_row(family: tuple[str, Case]) -> None:
    _, (policy, schema, catalog) = family
    x = contexts(schema, 5)
    batch = policy.probabilities(x, catalog)
    for i in range(5):
        np.testing.assert_allclose(policy.probabilities(x[i : i + 1], catalog), batch[i : i + 1])


def test_save_and_load_give_identical_outputs(family: tuple[str, Case], tmp_path: Path) -> None:
    name, (policy, schema, catalog) = family
    manifest = save_policy(
        tmp_path / name, policy, name=name, schema=schema, catalog=catalog, created_at=1.0
    )
    loaded = load_policy(tmp_path / name)
    assert loaded.version == manifest.version
    assert loaded.manifest.feature_schema == schema
    assert loaded.manifest.action_catalog.version == catalog.version
    x = contexts(schema, 50)
    np.testing.assert_array_equal(
        loaded.policy.probabilities(x, catalog), policy.probabilities(x, catalog)
    )


def test_the_same_model_saved_twice_has_the_same_version(
    family: tuple[str, Case], tmp_path: Path
) -> None:
    name, (policy, schema, catalog) = family
    again, *_ = FAMILIES[name](np.random.default_rng(7))
    a = save_policy(tmp_path / "a", policy, name=name, schema=schema, catalog=catalog, created_at=1)
    b = save_policy(tmp_path / "b", again, name=name, schema=schema, catalog=catalog, created_at=2)
    assert a.version == b.version
    c = save_policy(
        tmp_path / "c",
        policy,
        name=name,
        schema=schema,
        catalog=catalog,
        created_at=1,
        snapshot_id="other-data",
    )
    assert c.version != a.version


def test_masks_are_respected(family: tuple[str, Case]) -> None:
    _, (policy, schema, catalog) = family
    banned = catalog.ids[::2]
    stack = PolicyStack(policy, schema, SafetyConfig(masks=(StaticMask(deny=banned),)))
    x = contexts(schema, 200)
    decisions = stack.decide(x, catalog, np.random.default_rng(0))
    for action in banned:
        column = catalog.index(action)
        assert np.all(decisions.probs[:, column] == 0.0)
        assert not np.any(decisions.index == column)
    np.testing.assert_allclose(decisions.probs.sum(axis=1), 1.0)
    rows = np.arange(200)
    np.testing.assert_array_equal(decisions.propensity, decisions.probs[rows, decisions.index])


@pytest.mark.parametrize("name", ["linear", "bilinear", "mlp_logits", "mlp_q"])
def test_wrong_feature_width_is_a_clear_error(name: str) -> None:
    policy, schema, catalog = FAMILIES[name](np.random.default_rng(0))
    with pytest.raises(ValidationError, match="features must have shape") as info:
        policy.probabilities(np.zeros((3, schema.dim + 1), dtype=np.float32), catalog)
    assert info.value.field == "features"


def test_stack_rejects_wrong_width_for_every_family(family: tuple[str, Case]) -> None:
    _, (policy, schema, catalog) = family
    stack = PolicyStack(policy, schema)
    with pytest.raises(ValidationError) as info:
        stack.decide(
            np.zeros((2, schema.dim - 1), dtype=np.float32), catalog, np.random.default_rng(0)
        )
    assert info.value.field == "features"


@pytest.mark.parametrize("name", ["linear", "mlp_logits", "mlp_q"])
def test_an_unknown_action_is_named(name: str) -> None:
    policy, schema, catalog = FAMILIES[name](np.random.default_rng(0))
    grown = catalog.add(Action("brand-new", tuple(0.0 for _ in catalog.feature_names)))
    with pytest.raises(NotFoundError, match="brand-new"):
        policy.probabilities(contexts(schema, 2), grown)


def test_bilinear_scores_a_new_action_by_its_features() -> None:
    policy, schema, catalog = FAMILIES["bilinear"](np.random.default_rng(0))
    assert isinstance(policy, BilinearPolicy)
    twin_features = catalog.actions[1].features
    grown = catalog.add(Action("twin-of-1", twin_features))
    x = contexts(schema, 20)
    scores = policy.scores(x, grown)
    np.testing.assert_allclose(scores[:, -1], scores[:, 1])


def test_a_subset_catalog_reads_the_right_outputs() -> None:
    policy, schema, catalog = FAMILIES["mlp_q"](np.random.default_rng(0))
    assert isinstance(policy, MLPPolicy)
    retired = catalog.retire(catalog.ids[0])
    x = contexts(schema, 30)
    full = policy.scores(x, catalog)
    np.testing.assert_allclose(policy.scores(x, retired), full[:, 1:])


def test_a_replaced_policy_does_not_reuse_the_old_cache() -> None:
    import dataclasses

    for name, arrays in (("linear", ("weights", "bias")), ("bilinear", ("matrix",))):
        policy, schema, catalog = FAMILIES[name](np.random.default_rng(0))
        assert isinstance(policy, LinearPolicy | BilinearPolicy)
        x = contexts(schema, 3)
        assert np.ptp(policy.scores(x, catalog)) > 0
        zero = {a: np.zeros_like(getattr(policy, a)) for a in arrays}
        changed = dataclasses.replace(policy, **zero)
        np.testing.assert_array_equal(changed.scores(x, catalog), 0.0)
    mlp, schema, catalog = FAMILIES["mlp_q"](np.random.default_rng(0))
    assert isinstance(mlp, MLPPolicy)
    x = contexts(schema, 3)
    mlp.scores(x, catalog)
    flat = tuple((np.zeros_like(w), np.zeros_like(b)) for w, b in mlp.layers)
    np.testing.assert_array_equal(dataclasses.replace(mlp, layers=flat).scores(x, catalog), 0.0)
