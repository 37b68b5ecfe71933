"""Incremental ridge regression with forgetting: the maths of every bandit learner.

The state is ``P = A^{-1}`` and ``b``; the estimate is ``theta = P b``. One event ``(x, r)``
with importance weight ``w`` and forgetting factor ``gamma in (0, 1]`` does

    A <- gamma A + w x x^T,        b <- gamma b + w r x,

so after ``t`` events from the prior ``A_0 = lambda I``, ``b_0 = 0``:

    A_t = gamma^t lambda I + sum_i gamma^(t-i) w_i x_i x_i^T,
    b_t = sum_i gamma^(t-i) w_i r_i x_i                                            (1)

(discounted ridge; Russac, Vernade & Cappé 2019, "Weighted linear bandits for
non-stationary environments"). The prior decays with the data: old evidence and the
prior lose weight at the same rate, so the estimate is the ridge solution on the
discounted data with a discounted penalty. Directions no event has excited for a long
time regain uncertainty (``P`` grows as ``gamma^-t`` there), which keeps an optimistic
rule exploring a drifting market; with ``gamma < 1`` and a very long quiet stretch ``P``
can overflow, which :func:`check_state` reports.

``P`` is never refit: Sherman–Morrison gives the inverse of a rank-one change in
``O(p^2)`` instead of ``O(p^3)``,

    (gamma A + x x^T)^{-1} = (P - u u^T / (gamma + x^T u)) / gamma,   u = P x.     (2)
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import numpy.typing as npt

from rlops.core.errors import ValidationError

Array = npt.NDArray[np.float64]
Index = npt.NDArray[np.intp]


def sherman_morrison(a_inv: Array, x: Array, gamma: float = 1.0) -> Array:
    """``(gamma A + x x^T)^{-1}`` from ``a_inv = A^{-1}`` by eq. (2); a new ``(p, p)`` array."""
    u = a_inv @ x
    out: Array = (a_inv - np.outer(u, u) / (gamma + x @ u)) / gamma
    return out


def _fold_in_order(
    p_inv: Array, acc: Array, xs: Array, rewards: Array, weights: Array, decays: Array
) -> None:
    """Events on one model, in place: ``A <- decay_i A + w_i x_i x_i^T`` by eq. (2)."""
    scaled = xs * np.sqrt(weights)[:, None]  # w x x^T = (sqrt(w) x)(sqrt(w) x)^T
    targets = xs * (weights * rewards)[:, None]  # w r x
    for xw, target, decay in zip(scaled, targets, decays.tolist(), strict=True):
        u = p_inv @ xw
        p_inv -= np.multiply.outer(u, u / (decay + xw @ u))
        if decay != 1.0:
            p_inv /= decay
            acc *= decay
        acc += target


def sequential_update(
    a_inv: Array,
    b: Array,
    xs: Array,
    rewards: Array,
    weights: Array,
    gamma: float,
) -> tuple[Array, Array]:
    """One model, events ``xs (n, p)`` in order: eq. (2) per event. Returns new ``(P, b)``.

    Events on one model do not commute under forgetting (and the state after each is
    what an online learner would serve), so this is a loop over events, ``O(n p^2)``,
    each step two BLAS-2 operations on a working copy.
    """
    p_inv, acc = a_inv.copy(), b.copy()
    _fold_in_order(p_inv, acc, xs, rewards, weights, np.full(len(xs), gamma))
    return symmetrize(p_inv), acc


def disjoint_update(
    a_inv: Array,
    b: Array,
    xs: Array,
    actions: Index,
    rewards: Array,
    weights: Array,
    gamma: float,
) -> tuple[Array, Array]:
    """One model per action: ``a_inv (K, q, q)``, ``b (K, q)``; event ``i`` updates model
    ``actions[i]`` with ``xs[i]``. Returns new ``(P, b)``.

    Forgetting runs on one clock for all models, as if they were the diagonal blocks of
    one model over one-hot action features: every event multiplies every ``A_a`` by
    ``gamma`` and adds ``w x x^T`` to one of them, so (1) holds per action with ``t`` the
    number of events in the batch. Models do not interact, so the batch runs in rounds:
    round ``j`` folds in every action's ``j``-th event at once (a batched eq. (2)), each
    model first catching up on the ``gamma`` factors of the events it sat out. Once only
    one action has events left (one action often takes most of a batch), the rest are
    folded in with the plain loop, which costs less per event than a batch of one.
    """
    n, k = len(actions), len(a_inv)
    p_inv, acc = a_inv.copy(), b.copy()
    clock = np.zeros(k, dtype=np.int64)  # events whose decay each model has taken
    order = np.argsort(actions, kind="stable")
    sorted_actions = actions[order]
    rank = np.empty(n, dtype=np.intp)
    rank[order] = np.arange(n) - np.searchsorted(sorted_actions, sorted_actions)
    counts = np.sort(np.bincount(actions, minlength=k))
    shared_rounds = int(counts[-2]) if k > 1 else 0  # rounds in which two or more actions act
    by_round = np.lexsort((np.arange(n), rank))
    bounds = np.searchsorted(rank[by_round], np.arange(shared_rounds + 1))
    root_w = np.sqrt(weights)
    for lo, hi in pairwise(bounds.tolist()):
        events = by_round[lo:hi]  # at most one per action
        acts = actions[events]
        block = p_inv[acts]
        vec = acc[acts]
        if gamma != 1.0:
            decay = gamma ** (events + 1 - clock[acts]).astype(np.float64)
            block /= decay[:, None, None]
            vec *= decay[:, None]
        xw = xs[events] * root_w[events, None]
        u = np.matmul(block, xw[:, :, None])[:, :, 0]
        denom = 1.0 + np.einsum("mi,mi->m", xw, u)
        block -= u[:, :, None] * (u / denom[:, None])[:, None, :]
        p_inv[acts] = block
        acc[acts] = vec + xs[events] * (weights * rewards)[events, None]
        clock[acts] = events + 1
    tail = by_round[bounds[-1] :]  # every remaining event belongs to one action
    if len(tail):
        a = int(actions[tail[0]])
        steps = np.diff(np.concatenate([[clock[a]], tail + 1]))
        decays = gamma ** steps.astype(np.float64)
        _fold_in_order(p_inv[a], acc[a], xs[tail], rewards[tail], weights[tail], decays)
        clock[a] = tail[-1] + 1
    if gamma != 1.0:
        rest = gamma ** (n - clock).astype(np.float64)
        p_inv /= rest[:, None, None]
        acc *= rest[:, None]
    return symmetrize(p_inv), acc


def symmetrize(a: Array) -> Array:
    """``(A + A^T) / 2``: rank-one updates keep ``P`` symmetric only up to rounding."""
    out: Array = 0.5 * (a + np.swapaxes(a, -1, -2))
    return out


def check_state(a_inv: Array, b: Array) -> None:
    """Refuse a state that overflowed (forgetting with a long stretch of no data)."""
    if not (np.all(np.isfinite(a_inv)) and np.all(np.isfinite(b))):
        raise ValidationError(
            "the ridge state overflowed: with gamma_forget < 1 the prior decays with every "
            "event, and A^{-1} grew past float range in a direction no event excites; "
            "use a gamma_forget closer to 1",
            field="gamma_forget",
        )


def normal_equations(
    xs: Array,
    rewards: Array,
    *,
    ridge_lambda: float,
    gamma: float = 1.0,
    weights: Array | None = None,
) -> tuple[Array, Array]:
    """``(A_t, b_t)`` of eq. (1) from scratch: the closed form the updates must match.

    ``O(n p^2)`` to build and ``O(p^3)`` to solve; refitting like this after every event
    is the baseline the rank-one update is benchmarked against.
    """
    n, p = xs.shape
    w = np.ones(n) if weights is None else weights
    discount = gamma ** (n - 1 - np.arange(n, dtype=np.float64)) * w
    a = gamma**n * ridge_lambda * np.eye(p) + (xs * discount[:, None]).T @ xs
    b = xs.T @ (discount * rewards)
    return a, b
