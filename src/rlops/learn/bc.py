"""Behaviour cloning: a softmax policy fitted to the logged actions by maximum likelihood.

    L(θ) = − Σ_i w_i log π_θ(a_i | s_i) / Σ_i w_i,
    π_θ(a | s) = exp f_θ(s)_a / Σ_{a' ∈ A(s)} exp f_θ(s)_{a'}

(Pomerleau 1991; Ross & Bagnell 2010 for what its errors cost over a horizon). The
softmax runs over the actions the decision could take (``allowed``), so the model never
learns to prefer one that was unavailable. ``w_i = 1`` by default; with
``weighting="propensity"`` each row counts by the logging policy's probability of its
action, ``π_b(a_i | s_i)``, so a log with exploration is cloned towards its deliberate
choices rather than its random ones.

The result exports to a numpy :class:`~rlops.policies.mlp.MLPPolicy` of logits with a
softmax head (or greedy, to act as the argmax of the clone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention
from torch import nn

from rlops.learn.data import LoggedData
from rlops.learn.nets import (
    Activation,
    BatchSampler,
    Progress,
    build_mlp,
    check,
    check_data,
    config_from_json,
    config_to_json,
    export_mlp,
    report_progress,
    seeded,
    standardizer,
    to_tensor,
)
from rlops.policies.contract import Head
from rlops.policies.mlp import MLPPolicy

Tensor = torch.Tensor


@dataclass(frozen=True)
class BCConfig:
    """Behaviour-cloning hyperparameters; same config and data give the same weights."""

    type: ClassVar[str] = "bc"
    hidden: tuple[int, ...] = (64, 64)
    activation: Activation = "relu"
    steps: int = 2000
    batch_size: int = 256
    learning_rate: float = 1e-3
    weighting: Literal["none", "propensity"] = "none"
    head: Literal["softmax", "greedy"] = "softmax"
    temperature: float = 1.0
    standardize: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        check(
            {
                "hidden": all(isinstance(h, int) and h >= 1 for h in self.hidden),
                "activation": self.activation in ("relu", "tanh"),
                "steps": self.steps >= 1,
                "batch_size": self.batch_size >= 1,
                "learning_rate": 0.0 < self.learning_rate < 1.0,
                "weighting": self.weighting in ("none", "propensity"),
                "head": self.head in ("softmax", "greedy"),
                "temperature": 0.0 < self.temperature < float("inf"),
            },
            "BC config",
        )

    def to_json(self) -> dict[str, Any]:
        return config_to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BCConfig:
        return config_from_json(cls, data)


def bc_loss(logits: Tensor, actions: Tensor, allowed: Tensor | None, weights: Tensor) -> Tensor:
    """Weighted negative log-likelihood of the logged actions under the allowed softmax.

    ``logits (B, k)``, ``actions (B,)``, ``allowed (B, k)`` or ``None`` (all), ``weights (B,)``.
    """
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    nll = F.cross_entropy(logits, actions, reduction="none")
    return (weights * nll).sum() / weights.sum()


@dataclass(frozen=True, eq=False)
class BCResult:
    """The exported policy, the torch network (on standardised features), the loss
    averaged over the last tenth of training."""

    policy: MLPPolicy
    network: nn.Sequential
    config: BCConfig
    loss: float


def train_bc(
    data: LoggedData, config: BCConfig | None = None, *, progress: Progress | None = None
) -> BCResult:
    """Fit ``π_θ`` to the logged actions over ``config.steps`` minibatches (Adam)."""
    config = config or BCConfig()
    check_data(data)
    shift, scale = standardizer(data.features, config.standardize)
    x = to_tensor((data.features - shift) / scale)
    actions = to_tensor(data.actions, torch.int64)
    allowed = None if data.allowed.all() else torch.from_numpy(data.allowed.copy())
    w = data.propensities if config.weighting == "propensity" else np.ones(len(data))
    weights = to_tensor(w)
    with seeded(config.seed):
        net = build_mlp(data.schema.dim, config.hidden, len(data.catalog), config.activation)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate, fused=True)
    sample = BatchSampler(len(data), config.batch_size, config.seed)
    tail = max(1, config.steps // 10)
    loss_sum = 0.0

    for step in range(1, config.steps + 1):
        rows = sample()
        loss = bc_loss(
            net(x[rows]), actions[rows], None if allowed is None else allowed[rows], weights[rows]
        )
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        optimizer.step()
        if step > config.steps - tail:
            loss_sum += loss.item()
        report_progress(progress, step, config.steps)

    policy = export_mlp(
        net,
        data.catalog.ids,
        shift=shift,
        scale=scale,
        activation=config.activation,
        output="logits",
        head=Head(config.head, config.temperature),
    )
    return BCResult(policy, net, config, loss_sum / tail)
