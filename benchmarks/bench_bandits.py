"""Bandit update throughput: Sherman–Morrison rank-one updates against a refit per event.

Both sides fold the same advisor-shaped events (11 context features; 5 strategies with
5 features each) into a LinUCB model and leave it ready to serve after every event,
that is, holding ``A^{-1}`` and ``theta``. The rank-one side is
:meth:`rlops.learn.bandits.BanditLearner.update` (``O(p^2)`` per event). The baseline
keeps ``A`` and ``b`` as running sums and re-solves the ridge after each event
(``O(p^3)``), the cheapest full refit there is. Forgetting is on (``gamma = 0.999``) on
both sides. Shared form: ``p = 12 x 6 = 72``; disjoint: ``K = 5`` models of ``q = 12``.
Targets: at least 5x for the shared form; at least 2x for the disjoint form, where a
12 x 12 inverse costs little more than numpy's overhead per call, so the gain comes
mostly from updating the actions' models together rather than from the lower order.
Both sides run with one BLAS thread.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no stubs ship

from benchmarks.common import BenchResult, best_rate
from rlops.learn.bandits import BanditConfig, BanditLearner
from rlops.policies.bandit import augment, joint_features
from rlops.policies.linear import action_basis
from rlops.sim.advisor_core import ADVISOR_ACTIONS, ADVISOR_SCHEMA

Array = npt.NDArray[np.float64]
EVENTS = 4_000
GAMMA = 0.999


def _events() -> tuple[Array, npt.NDArray[np.intp], Array]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(EVENTS, ADVISOR_SCHEMA.dim))
    return x, rng.integers(0, len(ADVISOR_ACTIONS), size=EVENTS), rng.normal(size=EVENTS)


def _rank_one(form: str) -> int:
    x, a, r = _events()
    config = BanditConfig(form=form, gamma_forget=GAMMA)  # type: ignore[arg-type]
    learner = BanditLearner(config, ADVISOR_ACTIONS, ADVISOR_SCHEMA.dim)
    for start in range(0, EVENTS, 100):  # one batch per simulated day of 100 users
        learner.update(x[start : start + 100], a[start : start + 100], r[start : start + 100])
    return EVENTS


def _refit_shared() -> int:
    x, a, r = _events()
    phi = action_basis(ADVISOR_ACTIONS.feature_matrix(), "identity")
    xs = joint_features(augment(x), phi[a])
    n = EVENTS // 4  # the refit is slow: a quarter of the events gives a stable rate
    p = xs.shape[1]
    big_a, b = np.eye(p), np.zeros(p)
    for i in range(n):
        big_a = GAMMA * big_a + np.outer(xs[i], xs[i])
        b = GAMMA * b + r[i] * xs[i]
        a_inv = np.linalg.inv(big_a)
        _theta = a_inv @ b
    return n


def _refit_disjoint() -> int:
    x, a, r = _events()
    z1 = augment(x)
    k, q = len(ADVISOR_ACTIONS), z1.shape[1]
    big_a, b = np.tile(np.eye(q), (k, 1, 1)), np.zeros((k, q))
    a_inv = big_a.copy()
    for i in range(EVENTS):
        big_a *= GAMMA
        b *= GAMMA
        big_a[a[i]] += np.outer(z1[i], z1[i])
        b[a[i]] += r[i] * z1[i]
        a_inv[a[i]] = np.linalg.inv(big_a[a[i]])  # the others only scale by 1 / gamma
        a_inv /= GAMMA
        a_inv[a[i]] *= GAMMA
        _theta = a_inv[a[i]] @ b[a[i]]
    return EVENTS


def run() -> list[BenchResult]:
    # One BLAS thread on both sides: these matrices are too small for threads to help,
    # and on a shared machine idle threads spinning make both rates erratic.
    with threadpool_limits(limits=1):
        return _measure()


def _measure() -> list[BenchResult]:
    results = []
    for form, refit, target in (("shared", _refit_shared, 5.0), ("disjoint", _refit_disjoint, 2.0)):
        fast = best_rate(partial(_rank_one, form))
        slow = best_rate(refit)
        ratio = fast / slow
        results.append(
            BenchResult(
                name=f"bandit_update_{form}",
                value=fast,
                unit="events/s",
                baseline="ridge refit per event",
                baseline_value=slow,
                ratio=ratio,
                target=f">= {target:g}x",
                passed=ratio >= target,
            )
        )
    return results
