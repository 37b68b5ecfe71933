"""What the offline learners share: an MLP, the feature standardiser, seeded batches,
config checks and the export to numpy inference.

Features are standardised once, from the training data (``z = (x - shift) / scale``);
the network trains on ``z`` and the exported :class:`~rlops.policies.mlp.MLPPolicy`
carries ``shift`` and ``scale``, so serving feeds it raw feature vectors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from rlops.core.errors import ValidationError
from rlops.learn.data import LoggedData
from rlops.policies.contract import Head
from rlops.policies.mlp import MLPPolicy, mlp_from_torch_layers

F64 = npt.NDArray[np.float64]
Activation = Literal["relu", "tanh"]
Progress = Callable[[int, int], None]
MIN_SCALE = 1e-6


def build_mlp(dim: int, hidden: tuple[int, ...], k: int, activation: Activation) -> nn.Sequential:
    """``dim -> hidden... -> k`` linear layers with ``activation`` between, none at the end."""
    act: type[nn.Module] = nn.ReLU if activation == "relu" else nn.Tanh
    layers: list[nn.Module] = []
    width = dim
    for h in hidden:
        layers += [nn.Linear(width, h), act()]
        width = h
    layers.append(nn.Linear(width, k))
    return nn.Sequential(*layers)


def load_weights(net: nn.Sequential, policy: Any, activation: Activation) -> None:
    """Warm-start ``net`` from a deployed :class:`~rlops.policies.mlp.MLPPolicy` (fine-tuning).

    The architecture must match layer for layer; numpy ``(in, out)`` weights go back to
    torch's ``(out, in)``.
    """
    from rlops.core.errors import ValidationError
    from rlops.policies.mlp import MLPPolicy

    linear = [m for m in net if isinstance(m, nn.Linear)]
    shapes = [tuple(m.weight.shape[::-1]) for m in linear]
    if not isinstance(policy, MLPPolicy) or [w.shape for w, _ in policy.layers] != shapes:
        raise ValidationError(
            f"the parent must be an MLP with layers {shapes} to warm-start from", field="parent"
        )
    if policy.activation != activation:
        raise ValidationError(
            f"the parent uses {policy.activation}; the config asks for {activation}",
            field="activation",
        )
    with torch.no_grad():
        for module, (w, b) in zip(linear, policy.layers, strict=True):
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            module.bias.copy_(torch.from_numpy(b))


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Torch's global generator seeded for the block and restored after it.

    Layer initialisation draws from the global generator; forking it keeps a training
    run from changing the caller's random stream, and two runs with one seed equal.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def standardizer(features: npt.NDArray[np.float32], enabled: bool = True) -> tuple[F64, F64]:
    """``(shift, scale)``: column means and standard deviations (1 for a constant column)."""
    d = features.shape[1]
    if not enabled or len(features) == 0:
        return np.zeros(d), np.ones(d)
    x = features.astype(np.float64)
    scale = x.std(axis=0)
    return x.mean(axis=0), np.where(scale > MIN_SCALE, scale, 1.0)


def to_tensor(x: npt.NDArray[Any], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x)).to(dtype)


class BatchSampler:
    """Uniform minibatch row indices with replacement, from a seeded numpy generator.

    Indices are drawn ``chunk`` batches at a time: one generator call per chunk instead
    of one per step, with the same stream for a given seed.
    """

    def __init__(self, n: int, batch_size: int, seed: int, chunk: int = 512) -> None:
        self._rng = np.random.default_rng(seed)
        self._n, self._batch, self._chunk = n, batch_size, chunk
        self._block = torch.empty((0, batch_size), dtype=torch.int64)
        self._next = 0

    def __call__(self) -> torch.Tensor:
        if self._next == len(self._block):
            drawn = self._rng.integers(0, self._n, size=(self._chunk, self._batch))
            self._block = torch.from_numpy(drawn)
            self._next = 0
        rows = self._block[self._next]
        self._next += 1
        return rows


def export_mlp(
    net: nn.Sequential,
    action_ids: tuple[str, ...],
    *,
    shift: F64,
    scale: F64,
    activation: Activation,
    output: Literal["q", "logits"],
    head: Head,
) -> MLPPolicy:
    """The numpy :class:`MLPPolicy` computing ``net((x - shift) / scale)``."""
    weights = [
        (m.weight.detach().cpu().numpy(), m.bias.detach().cpu().numpy())
        for m in net
        if isinstance(m, nn.Linear)
    ]
    return mlp_from_torch_layers(
        action_ids,
        weights,
        activation=activation,
        output=output,
        head=head,
        shift=shift,
        scale=scale,
    )


def report_progress(progress: Progress | None, step: int, total: int) -> None:
    """Call ``progress`` about a hundred times a run and on the last step."""
    if progress is not None and (step % max(1, total // 100) == 0 or step == total):
        progress(step, total)


def check_data(data: LoggedData) -> None:
    """Refuse data no learner can use, naming the field."""
    if len(data) == 0:
        raise ValidationError("no rows to learn from", field="data")
    if not np.all(np.isfinite(data.features)):
        raise ValidationError("features hold a non-finite value", field="features")


def check(checks: Mapping[str, bool], what: str) -> None:
    """Raise :class:`ValidationError` naming the first field whose check failed."""
    for name, ok in checks.items():
        if not ok:
            raise ValidationError(f"{what}: invalid {name}", field=name)


C = TypeVar("C")


def config_to_json(config: Any) -> dict[str, Any]:
    """The config's fields plus its ``type`` tag; tuples become lists."""
    out: dict[str, Any] = {"type": config.type}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = config_to_json(value)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def config_from_json(cls: type[C], data: Mapping[str, Any]) -> C:
    """Rebuild ``cls`` from :func:`config_to_json`'s output; unknown keys are errors."""
    tag = getattr(cls, "type")  # noqa: B009 - a ClassVar every config declares
    if data.get("type", tag) != tag:
        raise ValidationError(f"a {data.get('type')!r} config is not a {tag!r}", field="type")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # a dataclass
    unknown = sorted(set(data) - set(fields) - {"type"})
    if unknown:
        raise ValidationError(f"unknown {tag} config field {unknown[0]!r}", field=unknown[0])
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k != "type"}
    return cls(**kwargs)
