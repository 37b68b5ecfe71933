"""Discrete Conservative Q-Learning, CQL(H) (Kumar, Zhou, Tucker, Levine 2020, eq. 4).

Offline Q-learning overestimates actions the log never tried: the Bellman target's max
picks them and nothing in the data corrects it. CQL adds a penalty that pushes Q down on
every action (a soft maximum, ``logsumexp``) and up on the logged one, so the learned
greedy policy stays where the data has support:

    L(θ) = α · E_s[ log Σ_{a ∈ A(s)} exp Q_θ(s, a) − Q_θ(s, a_D) ]      (conservative)
         + E_(s,a,r,s')[ ℓ(Q_θ(s, a) − y) ]                              (TD, Huber or MSE)
    y    = r + γ (1 − d) Q_θ̄(s', argmax_{a' ∈ A(s')} Q_θ(s', a'))         (double DQN target)

``A(s)`` are the actions the decision could take (``allowed``); ``θ̄`` is a target
network, Polyak-averaged (``tau < 1``) or copied every ``target_update_interval`` steps
(``tau = 1``). With ``gamma = 0`` (one-step data: the advisor, any joined bandit log)
the target is the reward alone and the next state is never read.

Train from :class:`~rlops.learn.data.LoggedData`: with ``gamma > 0`` its
:meth:`~rlops.learn.data.LoggedData.transitions` (each unit's decisions chained in time
order); with ``gamma = 0`` its rows as they are. The result exports to a numpy
:class:`~rlops.policies.mlp.MLPPolicy` of Q-values with a greedy head; at serving time
the safety layer's action masks keep it off unavailable actions, as they do for every
policy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention
from torch import nn

from rlops.learn.data import LoggedData, Transitions
from rlops.learn.nets import (
    F64,
    Activation,
    BatchSampler,
    Progress,
    build_mlp,
    check,
    check_data,
    config_from_json,
    config_to_json,
    export_mlp,
    load_weights,
    report_progress,
    seeded,
    standardizer,
    to_tensor,
)
from rlops.policies.contract import GREEDY
from rlops.policies.mlp import MLPPolicy

Tensor = torch.Tensor


@dataclass(frozen=True)
class CQLConfig:
    """Discrete CQL hyperparameters; same config and data give the same weights.

    ``alpha`` trades the Bellman fit against staying on the logged actions, in units of
    Q: with small per-step rewards (pricing earns about 0.05 a visit) an ``alpha`` of 1
    all but clones the logging policy, and 0.1 lets the data's reward differences show.
    ``gamma = 0`` is one-step (bandit) learning. ``tau`` is the Polyak rate, applied
    every ``target_update_interval`` steps; ``tau = 1`` copies (DQN's periodic update).
    """

    type: ClassVar[str] = "discrete_cql"
    hidden: tuple[int, ...] = (64, 64)  # widths of the hidden layers
    activation: Activation = "relu"
    steps: int = 5000  # gradient steps (minibatches)
    batch_size: int = 256
    learning_rate: float = 3e-4  # Adam
    gamma: float = 0.99  # discount; 0 for one-step data
    alpha: float = 1.0  # weight of the conservative penalty
    tau: float = 0.005  # Polyak rate of the target network
    target_update_interval: int = 1  # steps between target updates
    td_loss: Literal["huber", "mse"] = "huber"
    double_q: bool = True  # double-DQN target (online argmax, target value)
    standardize: bool = True  # z = (x - mean) / std from the training data
    seed: int = 0  # initialisation and minibatch sampling

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        check(
            {
                "hidden": all(isinstance(h, int) and h >= 1 for h in self.hidden),
                "activation": self.activation in ("relu", "tanh"),
                "steps": self.steps >= 1,
                "batch_size": self.batch_size >= 1,
                "learning_rate": 0.0 < self.learning_rate < 1.0,
                "gamma": 0.0 <= self.gamma < 1.0,
                "alpha": 0.0 <= self.alpha < float("inf"),
                "tau": 0.0 < self.tau <= 1.0,
                "target_update_interval": self.target_update_interval >= 1,
                "td_loss": self.td_loss in ("huber", "mse"),
            },
            "CQL config",
        )

    def to_json(self) -> dict[str, Any]:
        return config_to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CQLConfig:
        return config_from_json(cls, data)


class CQLLoss(NamedTuple):
    """The objective and its two parts (scalars)."""

    total: Tensor
    td: Tensor
    conservative: Tensor


def td_target(
    *,
    rewards: Tensor,
    dones: Tensor,
    q_next: Tensor,
    q_next_target: Tensor,
    next_allowed: Tensor | None,
    gamma: float,
    double_q: bool = True,
) -> Tensor:
    """``y = r + γ (1 − d) Q_θ̄(s', a*)``, ``a*`` the best allowed action in ``s'``.

    Double DQN (van Hasselt et al. 2016) picks ``a*`` by the online ``Q_θ`` and scores it
    by the target ``Q_θ̄``; plain DQN does both with ``Q_θ̄``. Shapes: ``rewards, dones
    (B,)``, ``q_next, q_next_target, next_allowed (B, k)``.
    """
    chooser = q_next if double_q else q_next_target
    if next_allowed is not None:
        chooser = chooser.masked_fill(~next_allowed, float("-inf"))
    a_star = chooser.argmax(dim=1, keepdim=True)
    v_next = q_next_target.gather(1, a_star).squeeze(1)
    return rewards + gamma * (1.0 - dones) * v_next


def td_error_loss(q_sa: Tensor, y: Tensor, kind: Literal["huber", "mse"]) -> Tensor:
    """``E[ℓ(Q(s, a) − y)]``: Huber (quadratic within 1, linear past it) or squared error."""
    if kind == "huber":
        return F.smooth_l1_loss(q_sa, y)
    return F.mse_loss(q_sa, y)


def conservative_penalty(q: Tensor, actions: Tensor, allowed: Tensor | None) -> Tensor:
    """CQL(H): ``E_s[log Σ_{a ∈ A(s)} exp Q(s, a)] − E_(s,a)~D[Q(s, a)]`` (eq. 4).

    ``q (B, k)``, ``actions (B,)`` logged indices, ``allowed (B, k)`` or ``None`` (all).
    The soft maximum covers the allowed actions only: an action a decision could not
    take has no value to push down.
    """
    if allowed is not None:
        q = q.masked_fill(~allowed, float("-inf"))
    q_data = q.gather(1, actions[:, None]).squeeze(1)
    return (torch.logsumexp(q, dim=1) - q_data).mean()


def cql_loss(
    q: Tensor,
    actions: Tensor,
    y: Tensor,
    allowed: Tensor | None,
    *,
    alpha: float,
    kind: Literal["huber", "mse"] = "huber",
) -> CQLLoss:
    """``α · conservative + TD`` for one batch: ``q (B, k)`` online Q-values, ``y (B,)``."""
    q_sa = q.gather(1, actions[:, None]).squeeze(1)
    td = td_error_loss(q_sa, y, kind)
    conservative = conservative_penalty(q, actions, allowed)
    return CQLLoss(td + alpha * conservative, td, conservative)


class Batch(NamedTuple):
    """One minibatch: ``obs, next_obs (B, d)`` standardised, ``actions (B,)`` int64,
    ``rewards, dones (B,)``, ``allowed, next_allowed (B, k)`` bool or ``None`` (all)."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    dones: Tensor
    allowed: Tensor | None
    next_allowed: Tensor | None


@dataclass(frozen=True, eq=False)
class QData:
    """Every training row as tensors, the floats packed into one ``table (n, 2d + 2)`` of
    ``[obs | next_obs | reward | done]`` so a batch is one gather, not four."""

    table: Tensor
    actions: Tensor
    allowed: Tensor | None
    next_allowed: Tensor | None

    def __len__(self) -> int:
        return len(self.actions)

    def batch(self, rows: Tensor) -> Batch:
        d = (self.table.shape[1] - 2) // 2
        t = self.table[rows]
        return Batch(
            t[:, :d],
            self.actions[rows],
            t[:, 2 * d],
            t[:, d : 2 * d],
            t[:, 2 * d + 1],
            None if self.allowed is None else self.allowed[rows],
            None if self.next_allowed is None else self.next_allowed[rows],
        )


def q_data(data: LoggedData, config: CQLConfig, shift: F64, scale: F64) -> QData:
    """Rows for one-step data (``gamma = 0``) or chained transitions (``gamma > 0``)."""

    def mask(m: npt.NDArray[np.bool_] | None) -> Tensor | None:
        return None if m is None or m.all() else torch.from_numpy(np.ascontiguousarray(m))

    if config.gamma == 0.0:
        # One-step data: nothing follows a decision, so every row is terminal.
        t = Transitions(
            data.features, data.actions, data.rewards, data.features, np.ones(len(data), bool)
        )
        allowed: npt.NDArray[np.bool_] | None = data.allowed
        next_allowed = None
    else:
        t = data.transitions()
        allowed, next_allowed = t.allowed, t.next_allowed
    obs, next_obs, dones, actions, rewards = t.obs, t.next_obs, t.dones, t.actions, t.rewards
    table = np.column_stack(
        [(obs - shift) / scale, (next_obs - shift) / scale, rewards, dones.astype(np.float64)]
    )
    return QData(
        to_tensor(table), to_tensor(actions, torch.int64), mask(allowed), mask(next_allowed)
    )


@torch.no_grad()
def soft_update(target: tuple[Tensor, ...], online: tuple[Tensor, ...], tau: float) -> None:
    """Polyak averaging ``θ̄ ← (1 − τ) θ̄ + τ θ``; ``τ = 1`` copies."""
    torch._foreach_lerp_(target, online, tau)


@dataclass(frozen=True, eq=False)
class CQLResult:
    """The exported policy, the torch Q-network (on standardised features), the losses
    averaged over the last tenth of training."""

    policy: MLPPolicy
    q_network: nn.Sequential
    config: CQLConfig
    td_loss: float
    conservative_loss: float


def train_cql(
    data: LoggedData,
    config: CQLConfig | None = None,
    *,
    progress: Progress | None = None,
    init: MLPPolicy | None = None,
) -> CQLResult:
    """Fit ``Q_θ`` by minimising the CQL(H) loss over ``config.steps`` minibatches.

    ``init`` warm-starts from a deployed Q-network (fine-tuning): its weights and its
    standardisation, so the parent's inputs mean what they meant.
    """
    config = config or CQLConfig()
    check_data(data)
    if init is not None and init.shift is not None and init.scale is not None:
        shift, scale = init.shift, init.scale
    else:
        shift, scale = standardizer(data.features, config.standardize)
    rows = q_data(data, config, shift, scale)
    k = len(data.catalog)
    with seeded(config.seed):
        q_net = build_mlp(data.schema.dim, config.hidden, k, config.activation)
    if init is not None:
        load_weights(q_net, init, config.activation)
    q_target = copy.deepcopy(q_net).requires_grad_(False)
    optimizer = torch.optim.Adam(q_net.parameters(), lr=config.learning_rate, fused=True)
    theta, theta_bar = tuple(q_net.parameters()), tuple(q_target.parameters())
    sample = BatchSampler(len(rows), config.batch_size, config.seed)
    tail = max(1, config.steps // 10)
    td_sum = conservative_sum = 0.0

    for step in range(1, config.steps + 1):
        b = rows.batch(sample())
        with torch.no_grad():
            y = b.rewards  # one-step data: the target is the reward
            if config.gamma > 0.0:
                q_next_target = q_target(b.next_obs)
                y = td_target(
                    rewards=b.rewards,
                    dones=b.dones,
                    q_next=q_net(b.next_obs) if config.double_q else q_next_target,
                    q_next_target=q_next_target,
                    next_allowed=b.next_allowed,
                    gamma=config.gamma,
                    double_q=config.double_q,
                )
        loss = cql_loss(
            q_net(b.obs), b.actions, y, b.allowed, alpha=config.alpha, kind=config.td_loss
        )
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss.total)
        optimizer.step()
        if step % config.target_update_interval == 0:
            soft_update(theta_bar, theta, config.tau)
        if step > config.steps - tail:
            td_sum += loss.td.item()
            conservative_sum += loss.conservative.item()
        report_progress(progress, step, config.steps)

    policy = export_mlp(
        q_net,
        data.catalog.ids,
        shift=shift,
        scale=scale,
        activation=config.activation,
        output="q",
        head=GREEDY,
    )
    return CQLResult(policy, q_net, config, td_sum / tail, conservative_sum / tail)
