"""Experiments: stable, sticky, accurate arm assignment; validation; run-time share changes
across threads and worker processes sharing one file."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlops.core.errors import ConflictError, NotFoundError, ValidationError
from rlops.core.features import FeatureValue
from rlops.exploration.explorer import ExplorationConfig
from rlops.exploration.schedules import Schedule
from rlops.serving.experiments import (
    Arm,
    Experiment,
    Router,
    load_experiment,
    save_experiment,
    segment_mask,
    single_arm,
    unit_bucket,
)

IDS = [f"user-{i}" for i in range(100_000)]


def canary(share: float, salt: str = "rollout") -> Experiment:
    return Experiment(
        "canary",
        salt,
        (Arm("production", "production", 1.0 - share), Arm("canary", "candidate", share)),
    )


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met within the timeout")
        time.sleep(0.005)


# --- the hash ---------------------------------------------------------------------------


def test_unit_bucket_is_pinned() -> None:
    """These numbers must never change: a new hash would move every unit to another arm."""
    assert unit_bucket("user-1", "salt") == 0.8298019805082419
    assert unit_bucket("user-2", "salt") == 0.7400573496943367
    assert unit_bucket("", "salt") == 0.1854092718606326
    assert unit_bucket("ü", "salt") == 0.8668534591296724
    assert unit_bucket("user-1", "other") != unit_bucket("user-1", "salt")


def test_unit_bucket_lies_in_unit_interval_and_is_roughly_uniform() -> None:
    buckets = np.array([unit_bucket(u, "s") for u in IDS[:20_000]])
    assert buckets.min() >= 0.0
    assert buckets.max() < 1.0
    # Mean of 20,000 uniforms: sd = sqrt(1/12 / 20000) = 0.0020; 0.01 is 5 sd.
    assert abs(buckets.mean() - 0.5) < 0.01


def test_buckets_agree_across_processes() -> None:
    """A fresh interpreter with another hash seed computes the same buckets and arms."""
    script = (
        "import json, sys\n"
        "from rlops.serving.experiments import Arm, Experiment, Router, unit_bucket\n"
        "ids = [f'user-{i}' for i in range(500)]\n"
        "exp = Experiment('e', 'rollout', (Arm('a', 'x', 0.3), Arm('b', 'y', 0.7)))\n"
        "arms = [arm.name for arm in Router(exp).assign(ids)]\n"
        "print(json.dumps({'buckets': [unit_bucket(u, 'rollout') for u in ids], 'arms': arms}))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    theirs = json.loads(result.stdout)
    ids = IDS[:500]
    exp = Experiment("e", "rollout", (Arm("a", "x", 0.3), Arm("b", "y", 0.7)))
    assert theirs["buckets"] == [unit_bucket(u, "rollout") for u in ids]
    assert theirs["arms"] == [arm.name for arm in Router(exp).assign(ids)]


def test_router_assigns_by_the_bucket_and_listed_order() -> None:
    exp = Experiment("e", "s", (Arm("a", "x", 0.25), Arm("b", "y", 0.5), Arm("c", "z", 0.25)))
    arms = Router(exp).assign(IDS[:5000])
    for unit_id, arm in zip(IDS[:5000], arms, strict=True):
        bucket = unit_bucket(unit_id, "s")
        expected = "a" if bucket < 0.25 else "b" if bucket < 0.75 else "c"
        assert arm.name == expected


# --- traffic shares ---------------------------------------------------------------------


@pytest.mark.parametrize("shares", [(0.9, 0.1), (0.5, 0.3, 0.2), (0.01, 0.99)])
def test_observed_shares_match_configured_shares(shares: tuple[float, ...]) -> None:
    """Within 0.5 percentage points on 100,000 ids.

    A count of n = 100,000 units at share p has sd sqrt(p (1 - p) / n): at most 0.158
    points (p = 0.5), 0.095 at p = 0.1, 0.031 at p = 0.01; so 0.5 points is 3.2 sd or more,
    which a uniform hash misses with probability < 0.2% per arm, and a biased hash or
    a mis-laid boundary (an error of one arm's share) fails by far more.
    """
    arms = tuple(Arm(f"arm{i}", "production", share) for i, share in enumerate(shares))
    counts = Counter(arm.name for arm in Router(Experiment("e", "acc", arms)).assign(IDS))
    for arm in arms:
        assert abs(counts[arm.name] / len(IDS) - arm.share) < 0.005, (arm, counts)


def test_zero_share_arms_get_no_traffic() -> None:
    for arms in [
        (Arm("off", "x", 0.0), Arm("a", "y", 0.5), Arm("b", "z", 0.5)),
        (Arm("a", "y", 0.5), Arm("off", "x", 0.0), Arm("b", "z", 0.5)),
        (Arm("a", "y", 0.3), Arm("b", "z", 0.7), Arm("off", "x", 0.0)),
    ]:
        counts = Counter(
            arm.name for arm in Router(Experiment("e", "z", arms)).assign(IDS[:20_000])
        )
        assert counts["off"] == 0
        assert counts["a"] + counts["b"] == 20_000


def test_a_hair_under_one_still_assigns_every_unit_to_a_served_arm() -> None:
    arms = (Arm("a", "x", 0.1), Arm("b", "y", 0.2), Arm("c", "z", 0.7 - 5e-10))
    counts = Counter(a.name for a in Router(Experiment("e", "s", arms)).assign(IDS[:10_000]))
    assert sum(counts.values()) == 10_000
    assert set(counts) == {"a", "b", "c"}


def test_staged_rollout_keeps_every_earlier_canary_unit() -> None:
    ids = IDS[:50_000]
    router = Router(canary(0.0))
    previous: set[str] = set()
    for share in (0.01, 0.10, 0.50, 1.0):
        router.set_shares({"production": 1.0 - share, "canary": share})
        now = {u for u, arm in zip(ids, router.assign(ids), strict=True) if arm.name == "canary"}
        assert previous <= now
        assert abs(len(now) / len(ids) - share) < 0.007  # 0.22 points sd at most; > 3 sd
        previous = now
    assert len(previous) == len(ids)


@settings(max_examples=200, deadline=None)
@given(
    shares=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=6),
    unit_ids=st.lists(
        st.text(st.characters(codec="utf-8"), max_size=20), min_size=1, max_size=200, unique=True
    ),
    salt=st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=10
    ),
)
def test_growing_the_last_arm_only_moves_units_into_it(
    shares: list[float], unit_ids: list[str], salt: str
) -> None:
    previous: set[str] = set()
    for share in sorted(shares):
        router = Router(canary(share, salt))
        arms = router.assign(unit_ids)
        now = {u for u, arm in zip(unit_ids, arms, strict=True) if arm.name == "canary"}
        assert previous <= now
        # and the assignment is a pure function of (unit, salt, shares)
        assert Router(canary(share, salt)).assign(unit_ids) == arms
        previous = now


def test_assign_rejects_non_strings_naming_the_position() -> None:
    router = Router(single_arm())
    with pytest.raises(ValidationError) as error:
        router.assign(["ok", 7, "x"])  # type: ignore[list-item]  # the server's input is untrusted
    assert error.value.field == "unit_ids[1]"
    with pytest.raises(ValidationError) as error:
        router.assign(["ok", "\ud800"])
    assert error.value.field == "unit_ids[1]"
    assert router.assign([]) == []


# --- records and validation -------------------------------------------------------------


def test_single_arm_is_the_whole_population() -> None:
    exp = single_arm("stable")
    assert exp.arms == (Arm("production", "stable", 1.0),)
    assert {a.name for a in Router(exp).assign(IDS[:1000])} == {"production"}
    assert single_arm().arm("production").alias == "production"


def full_experiment() -> Experiment:
    explore = ExplorationConfig("epsilon", Schedule("linear", 0.2, 0.05, 1000.0), 0.01)
    return Experiment(
        "pricing-canary",
        "2024-q3",
        (
            Arm("production", "production", 0.9, ExplorationConfig("none")),
            Arm("canary", "candidate", 0.1, explore, {"region": "eu", "vip": True}),
        ),
        revision=7,
    )


def test_json_round_trip() -> None:
    exp = full_experiment()
    assert Experiment.from_json(orjson.loads(orjson.dumps(exp.to_json()))) == exp
    assert Experiment.from_json(single_arm().to_json()) == single_arm()
    segment = exp.arm("canary").explore_segment
    assert segment is not None
    with pytest.raises(TypeError):
        segment["region"] = "us"  # type: ignore[index]  # read-only on purpose


def test_arm_lookup() -> None:
    assert full_experiment().arm("canary").alias == "candidate"
    with pytest.raises(NotFoundError):
        full_experiment().arm("nope")


def arm(**changes: Any) -> Arm:
    values: dict[str, Any] = {"name": "a", "alias": "production", "share": 1.0} | changes
    return Arm(**values)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: arm(name=""), "name"),
        (lambda: arm(name="x" * 65), "name"),
        (lambda: arm(name="has space"), "name"),
        (lambda: arm(alias="a/b"), "alias"),
        (lambda: arm(share=-0.1), "share"),
        (lambda: arm(share=1.5), "share"),
        (lambda: arm(share=math.nan), "share"),
        (lambda: arm(share=math.inf), "share"),
        (lambda: arm(share=True), "share"),
        (lambda: arm(share="0.5"), "share"),
        (lambda: arm(exploration={"kind": "epsilon"}), "exploration"),
        (lambda: arm(explore_segment={}), "explore_segment"),
        (lambda: arm(explore_segment={"x": math.nan}), "explore_segment.x"),
        (lambda: Experiment("e", "s", ()), "arms"),
        # A list is taken as a tuple; a string is not an arm.
        (lambda: Experiment("e", "s", [arm()]), None),  # type: ignore[arg-type]
        (lambda: Experiment("e", "s", (arm(), arm())), "arms[1].name"),
        (lambda: Experiment("e", "s", (arm(share=0.5), arm(name="b", share=0.4))), "arms"),
        (lambda: Experiment("e", "s", (arm(share=0.6), arm(name="b", share=0.6))), "arms"),
        (lambda: Experiment("e", "s", (arm(), "production")), "arms[1]"),  # type: ignore[arg-type]
        (lambda: Experiment("e", "", (arm(),)), "salt"),
        (lambda: Experiment("e", "a\x00b", (arm(),)), "salt"),
        (lambda: Experiment("", "s", (arm(),)), "name"),
        (lambda: Experiment("e", "s", (arm(),), revision=-1), "revision"),
        (lambda: Experiment("e", "s", (arm(),), revision=True), "revision"),
    ],
)
def test_invalid_records_name_the_field(build: Callable[[], object], field: str | None) -> None:
    if field is None:
        assert isinstance(build(), Experiment)
        return
    with pytest.raises(ValidationError) as error:
        build()
    assert error.value.field == field


def test_shares_within_tolerance_are_accepted() -> None:
    exp = Experiment("e", "s", (arm(share=0.1), arm(name="b", share=0.2), arm(name="c", share=0.7)))
    assert math.fsum(a.share for a in exp.arms) == pytest.approx(1.0)
    with pytest.raises(ValidationError):
        Experiment("e", "s", (arm(share=0.5), arm(name="b", share=0.5 + 2e-9)))


def patched(path: str, value: object) -> dict[str, Any]:
    """The full experiment's JSON with one value set (or removed, for ...) at a dotted path."""
    data = full_experiment().to_json()
    node: Any = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last: Any = int(keys[-1]) if isinstance(node, list) else keys[-1]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "experiment"),
        ("{}", "experiment"),
        (patched("name", ...), "name"),
        (patched("salt", 3), "salt"),
        (patched("shares", {}), "shares"),
        (patched("arms", {"a": 1}), "arms"),
        (patched("arms", []), "arms"),
        (patched("revision", "1"), "revision"),
        (patched("arms.1", "canary"), "arms[1]"),
        (patched("arms.1.share", "0.1"), "arms[1].share"),
        (patched("arms.1.share", None), "arms[1].share"),
        (patched("arms.1.share", ...), "arms[1].share"),
        (patched("arms.0.name", 5), "arms[0].name"),
        (patched("arms.0.weight", 5), "arms[0].weight"),
        (patched("arms.1.exploration", "epsilon"), "arms[1].exploration"),
        (patched("arms.1.exploration.kind", "greedy"), "arms[1].exploration.kind"),
        (patched("arms.1.exploration.rate", 0.1), "arms[1].exploration.rate"),
        (patched("arms.1.exploration.floor", "high"), "arms[1].exploration.floor"),
        (patched("arms.1.exploration.schedule", []), "arms[1].exploration.schedule"),
        (patched("arms.1.exploration.schedule.start", -1), "arms[1].exploration.schedule.start"),
        (patched("arms.1.exploration.schedule.step", 1), "arms[1].exploration.schedule.step"),
        (patched("arms.1.exploration.schedule.start", 2.0), "arms[1].exploration.schedule"),
        (patched("arms.1.explore_segment", ["eu"]), "arms[1].explore_segment"),
        (patched("arms.1.explore_segment.region", [1]), "arms[1].explore_segment.region"),
    ],
)
def test_bad_json_names_the_field(data: object, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        Experiment.from_json(data)
    assert error.value.field == field


def test_with_shares_changes_only_the_named_arms() -> None:
    exp = Experiment("e", "s", (arm(share=0.9), arm(name="b", share=0.1), arm(name="c", share=0)))
    moved = exp.with_shares({"b": 0.0, "c": 0.1})
    assert [a.share for a in moved.arms] == [0.9, 0.0, 0.1]
    assert moved.revision == exp.revision + 1
    assert moved.arms[0] is exp.arms[0]
    assert exp.arms[1].share == 0.1  # the original is untouched


@pytest.mark.parametrize(
    ("shares", "field"),
    [
        ({"nope": 0.5}, "shares.nope"),
        ({"b": 0.2}, "shares"),  # sums to 1.1
        ({"b": -0.1, "a": 1.1}, "shares.b"),
        ({"b": "0.1"}, "shares.b"),
        ({"a": math.nan}, "shares.a"),
        ([("a", 1.0)], "shares"),
    ],
)
def test_with_shares_errors_name_the_field(shares: Any, field: str) -> None:
    exp = Experiment("e", "s", (arm(share=0.9), arm(name="b", share=0.1)))
    with pytest.raises(ValidationError) as error:
        exp.with_shares(shares)
    assert error.value.field == field


# --- exploration segment ----------------------------------------------------------------


def test_segment_mask() -> None:
    rows: list[dict[str, FeatureValue]] = [
        {"region": "eu", "vip": True, "age": 30},
        {"region": "eu", "vip": False},
        {"region": "us", "vip": True},
        {"vip": True},
        {"region": "eu", "vip": 1.0},
    ]
    mask = segment_mask({"region": "eu", "vip": True}, rows)
    assert mask.dtype == np.bool_
    assert mask.tolist() == [True, False, False, False, True]
    assert segment_mask(None, rows).tolist() == [True] * 5
    assert segment_mask({"region": "eu"}, []).shape == (0,)
    assert segment_mask(None, []).shape == (0,)


# --- the router at run time -------------------------------------------------------------


def test_update_commits_at_the_next_revision_and_checks_the_expected_one() -> None:
    router = Router(canary(0.1))
    assert router.experiment.revision == 0
    replaced = router.update(canary(0.5, salt="new").with_shares({}).with_shares({}))
    assert replaced.revision == 1  # its own revision (2) is ignored
    assert router.experiment == replaced
    assert router.set_shares({"production": 0.0, "canary": 1.0}, expected_revision=1).revision == 2
    with pytest.raises(ConflictError) as error:
        router.set_shares({"production": 1.0, "canary": 0.0}, expected_revision=1)
    assert error.value.field == "expected_revision"
    assert router.experiment.revision == 2
    assert router.experiment.arm("canary").share == 1.0


def test_a_rejected_change_changes_nothing() -> None:
    router = Router(canary(0.1))
    with pytest.raises(ValidationError):
        router.set_shares({"canary": 0.5})  # would sum to 1.4
    assert router.experiment == canary(0.1)


def _file_revision(path: Path) -> int:
    return load_experiment(path).revision if path.exists() else 0


def race(routers: list[Router], expected_revision: int) -> list[str]:
    """Each router sets different shares at once, expecting the same revision."""
    barrier = threading.Barrier(len(routers))
    outcomes: list[str] = []

    def contend(router: Router, share: float) -> None:
        barrier.wait()
        try:
            shares = {"production": 1 - share, "canary": share}
            router.set_shares(shares, expected_revision=expected_revision)
            outcomes.append("won")
        except ConflictError:
            outcomes.append("conflict")

    threads = [
        threading.Thread(target=contend, args=(router, 0.1 * (i + 1)))
        for i, router in enumerate(routers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


@pytest.mark.parametrize("with_file", [False, True])
def test_racing_updates_with_the_same_expected_revision_one_wins(
    with_file: bool, tmp_path: Path
) -> None:
    path = tmp_path / "exp.json" if with_file else None
    routers = [Router(canary(0.1), path=path)]
    # With a file, the second contender is another worker's router on the same file.
    routers.append(Router(canary(0.1), path=path) if with_file else routers[0])
    for _ in range(20):
        # A stale router is fine: a commit first adopts a newer revision from the file.
        start = routers[0].experiment.revision if path is None else _file_revision(path)
        assert race(routers, start) == ["conflict", "won"]
        assert max(r.experiment.revision for r in routers) == start + 1
        if path is not None:
            assert load_experiment(path).revision == start + 1


def test_updates_persist_atomically_and_a_new_router_starts_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "exp.json"
    router = Router(canary(0.01), path=path)
    assert not path.exists()  # nothing is written until something changes
    committed = router.set_shares({"production": 0.9, "canary": 0.1})
    assert load_experiment(path) == committed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.json", "exp.json.lock"]
    restarted = Router(single_arm(), path=path)  # the file wins over the given default
    assert restarted.experiment == committed
    assert restarted.assign(IDS[:1000]) == router.assign(IDS[:1000])


def test_a_failed_write_changes_nothing(tmp_path: Path) -> None:
    router = Router(canary(0.1), path=tmp_path / "missing-dir" / "exp.json")
    with pytest.raises(FileNotFoundError):
        router.set_shares({"production": 0.5, "canary": 0.5})
    assert router.experiment == canary(0.1)


def test_save_and_load(tmp_path: Path) -> None:
    path = tmp_path / "exp.json"
    save_experiment(path, full_experiment())
    assert load_experiment(path) == full_experiment()
    save_experiment(path, single_arm())  # replaces
    assert load_experiment(path) == single_arm()
    assert [p.name for p in tmp_path.iterdir()] == ["exp.json"]
    with pytest.raises(NotFoundError):
        load_experiment(tmp_path / "none.json")
    path.write_text("{not json")
    with pytest.raises(ValidationError) as error:
        load_experiment(path)
    assert error.value.field == "experiment"


def test_an_invalid_file_at_start_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "exp.json"
    path.write_text('{"name": "e", "salt": "s", "arms": []}')
    with pytest.raises(ValidationError):
        Router(single_arm(), path=path)


def write_raw(path: Path, text: str) -> None:
    """As an operator's editor might: a temporary file moved into place."""
    tmp = path.with_name("edit.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_follow_picks_up_another_workers_changes_and_ignores_invalid_files(
    tmp_path: Path,
) -> None:
    path = tmp_path / "exp.json"
    admin = Router(canary(0.01), path=path)
    worker = Router(canary(0.01), path=path)
    worker.follow(interval=0.01)
    try:
        step = admin.set_shares({"production": 0.5, "canary": 0.5})
        wait_for(lambda: worker.experiment == step)
        assert worker.assign(IDS[:2000]) == admin.assign(IDS[:2000])

        write_raw(path, '{"name": "e", "salt": "s", "arms": [')
        wait_for(lambda: worker.reload_failures == 1)
        write_raw(path, json.dumps({**step.to_json(), "arms": []}))
        wait_for(lambda: worker.reload_failures == 2)
        assert worker.experiment == step

        older = Experiment.from_json({**canary(0.9).to_json(), "revision": 0})
        save_experiment(path, older)
        time.sleep(0.1)
        assert worker.experiment == step  # an older revision is not taken
        assert worker.reload_failures == 2

        edited = Experiment.from_json({**canary(1.0).to_json(), "revision": 9})
        save_experiment(path, edited)
        wait_for(lambda: worker.experiment == edited)
        path.unlink()
        time.sleep(0.05)
        assert worker.experiment == edited  # a removed file keeps the current experiment
    finally:
        worker.stop()
    assert worker.reload_failures == 2
    assert not any(t.name == "experiment-follower" for t in threading.enumerate())


def test_follow_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as error:
        Router(single_arm()).follow()
    assert error.value.field == "path"
    router = Router(single_arm(), path=tmp_path / "exp.json")
    with pytest.raises(ValidationError):
        router.follow(interval=0)
    router.follow(interval=0.01)
    try:
        with pytest.raises(ValidationError):
            router.follow()
    finally:
        router.stop()
    router.stop()  # idempotent


def test_assign_is_fast_enough_to_call_per_request() -> None:
    """Informal: well under the 2 µs per unit target (measured ~0.5 µs), with slack for a
    loaded machine; the benchmark suite holds the real figure."""
    router = Router(canary(0.1))
    ids = IDS[:20_000]
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        router.assign(ids)
        best = min(best, (time.perf_counter() - start) / len(ids))
    assert best < 10e-6
