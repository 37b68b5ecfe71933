"""A trained Stable-Baselines3 PPO or DQN model as a numpy :class:`MLPPolicy`.

What SB3 computes between an observation and the network, for a 1-d ``Box`` space
(``stable_baselines3.common.preprocessing.preprocess_obs``): a cast to float32 and
nothing else. ``normalize_images`` divides by 255 only for image spaces (3-d uint8
boxes), and the default ``FlattenExtractor`` is the identity on 1-d vectors. So the
exported network reads the env's observation as is, and both envs build their
observations in schema column order: the exported policy takes features in
``FeatureSchema`` column order with no standardisation (``shift=0``, ``scale=1``).
Anything else (a custom features extractor, image or dict observations) is refused,
not guessed at. ``VecNormalize`` statistics live outside the model and are not used
by :func:`rlops.learn.sb3.train`.

- PPO: the actor path, ``mlp_extractor.policy_net`` (Linear, act, ...) then
  ``action_net``; outputs are logits and the head is a softmax, so probabilities are
  exactly SB3's ``Categorical(logits=...)`` distribution and its mode its greedy action.
- DQN: ``q_net.q_net`` (Linear, act, ..., Linear); outputs are Q-values and the head
  greedy, as ``DQN.predict(deterministic=True)`` acts.

The env's action index ``i`` is the catalog's ``i``-th action, so ``action_ids`` are the
catalog's ids in order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from rlops.core.actions import ActionCatalog
from rlops.core.errors import ValidationError
from rlops.core.features import FeatureSchema
from rlops.policies.contract import GREEDY, Head
from rlops.policies.mlp import Activation, MLPPolicy, mlp_from_torch_layers

TorchLayer = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]


def _linear_stack(modules: Any, where: str) -> tuple[list[TorchLayer], Activation | None]:
    """The ``(W (out, in), b)`` of each Linear in a Sequential, and its one activation kind."""
    import torch

    names = {torch.nn.ReLU: "relu", torch.nn.Tanh: "tanh"}
    layers: list[TorchLayer] = []
    seen: set[str] = set()
    for module in modules:
        if isinstance(module, torch.nn.Linear):
            layers.append(
                (module.weight.detach().cpu().numpy(), module.bias.detach().cpu().numpy())
            )
        elif type(module) in names:
            seen.add(names[type(module)])
        else:
            raise ValidationError(
                f"{where}: cannot export a {type(module).__name__} layer", field="model"
            )
    if len(seen) > 1:
        raise ValidationError(f"{where}: mixed activations {sorted(seen)}", field="model")
    activation: Activation | None = "relu" if seen == {"relu"} else "tanh" if seen else None
    return layers, activation


def _check_spaces(policy: Any, catalog: ActionCatalog, schema: FeatureSchema | None) -> None:
    from gymnasium import spaces
    from stable_baselines3.common.torch_layers import FlattenExtractor

    obs = policy.observation_space
    if not isinstance(obs, spaces.Box) or len(obs.shape) != 1:
        raise ValidationError(
            f"only flat Box observations export; got {obs}", field="observation_space"
        )
    if schema is not None and obs.shape[0] != schema.dim:
        raise ValidationError(
            f"the model reads {obs.shape[0]} features; the schema builds {schema.dim}",
            field="schema",
        )
    action = policy.action_space
    if not isinstance(action, spaces.Discrete) or int(action.n) != len(catalog):
        raise ValidationError(
            f"the model's action space {action} does not index the {len(catalog)} catalog actions",
            field="catalog",
        )
    q_net = getattr(policy, "q_net", None)
    owner = policy if q_net is None else q_net
    names = ("features_extractor", "pi_features_extractor")
    extractors = [getattr(owner, n) for n in names if hasattr(owner, n)]
    if not all(isinstance(e, FlattenExtractor) for e in extractors):
        raise ValidationError(
            "only the default FlattenExtractor exports (a custom extractor is a network "
            "this module does not know)",
            field="model",
        )


def export_sb3(
    model: Any, catalog: ActionCatalog, *, schema: FeatureSchema | None = None
) -> MLPPolicy:
    """The numpy policy computing what ``model`` computes, with ``catalog``'s ids.

    ``model`` is a trained SB3 ``PPO`` or ``DQN`` with an ``MlpPolicy``; ``schema``
    (optional) is checked against the observation width.
    """
    from stable_baselines3 import DQN, PPO

    if not isinstance(model, PPO | DQN):
        raise ValidationError(
            f"export_sb3 takes PPO or DQN; got {type(model).__name__}", field="model"
        )
    policy: Any = model.policy  # typed as a Module union; its attributes are checked below
    _check_spaces(policy, catalog, schema)
    head: Head
    if isinstance(model, PPO):
        hidden, activation = _linear_stack(policy.mlp_extractor.policy_net, "policy_net")
        out, _ = _linear_stack([policy.action_net], "action_net")
        layers, output, head = [*hidden, *out], "logits", Head("softmax")
    else:
        layers, activation = _linear_stack(policy.q_net.q_net, "q_net")
        output, head = "q", GREEDY
    return mlp_from_torch_layers(
        catalog.ids,
        layers,
        activation=activation or "relu",  # a single linear layer applies none
        output=output,
        head=head,
    )
