"""Online RL on the simulators with Stable-Baselines3 (PPO, DQN), exported to numpy.

A run is fully described by an :class:`OnlineConfig`: a frozen dataclass that
round-trips through JSON and is stored as the artifact's ``training_config``, so a
registry entry says exactly how its weights were made. The same config and seed give
the same weights (SB3 seeds Python, numpy, torch and the environments from ``seed``;
we fix torch's thread count for the run so reductions happen in the same order).

What leaves this module for serving is an :class:`~rlops.policies.mlp.MLPPolicy`
(:func:`~rlops.learn.sb3_export.export_sb3`): the trained network as numpy arrays.
Neither torch nor Stable-Baselines3 is needed, or imported, to serve it.

Defaults that differ from SB3's, and why: the advisor environment is trained in its
bandit view (``delayed=False``: each decision gets its own window's reward; the delayed
view pays a decision the rewards of decisions made a month earlier, which a learner
cannot attribute), and the PPO rollout (512) and DQN buffer (50,000) are sized for
runs of tens of thousands of steps, not millions.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

import gymnasium as gym

from rlops.apps.spaces import app_spaces
from rlops.core.errors import ValidationError
from rlops.learn.sb3_export import export_sb3
from rlops.policies.artifact import Manifest, save_policy
from rlops.rewards.seeds import advisor_reward, pricing_reward
from rlops.sim import ADVISOR_ENV_ID, PRICING_ENV_ID, register_envs
from rlops.sim.advisor_core import AdvisorConfig
from rlops.sim.market_data import MarketSpec
from rlops.sim.pricing_core import PricingConfig

Algo = Literal["ppo", "dqn"]
App = Literal["pricing", "advisor"]
Activation = Literal["relu", "tanh"]
Progress = Callable[[int, int], None]

# Stable-Baselines3's own defaults per algorithm, made explicit so the stored config
# states the value used rather than "whatever the library did".
DEFAULT_ACTIVATION: dict[str, Activation] = {"ppo": "tanh", "dqn": "relu"}
DEFAULT_LEARNING_RATE: dict[str, float] = {"ppo": 3e-4, "dqn": 1e-4}
TRAINING_MARKET = MarketSpec(start="2013-01-02", end="2014-06-30")


def _require(checks: Mapping[str, bool], where: str) -> None:
    for name, ok in checks.items():
        if not ok:
            raise ValidationError(f"{where}: invalid {name}", field=f"{where}.{name}")


@dataclass(frozen=True)
class PPOSettings:
    """PPO's rollout and update (SB3 argument names; see Schulman et al. 2017).

    ``n_steps * n_envs`` must be a multiple of ``batch_size`` (checked by
    :class:`OnlineConfig`): SB3 would otherwise train on a truncated last mini-batch.
    """

    n_steps: int = 512
    batch_size: int = 64
    n_epochs: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0

    def __post_init__(self) -> None:
        _require(
            {
                "n_steps": self.n_steps >= 1,
                "batch_size": self.batch_size >= 2,  # SB3 normalises advantages per batch
                "n_epochs": self.n_epochs >= 1,
                "gamma": 0.0 <= self.gamma <= 1.0,
                "gae_lambda": 0.0 <= self.gae_lambda <= 1.0,
                "clip_range": self.clip_range > 0.0,
                "ent_coef": self.ent_coef >= 0.0,
            },
            "settings",
        )


@dataclass(frozen=True)
class DQNSettings:
    """DQN's replay, target network and epsilon schedule (SB3 argument names)."""

    buffer_size: int = 50_000
    learning_starts: int = 1_000
    batch_size: int = 64
    gamma: float = 0.99
    train_freq: int = 4
    gradient_steps: int = 1
    target_update_interval: int = 1_000
    exploration_fraction: float = 0.2
    exploration_final_eps: float = 0.05

    def __post_init__(self) -> None:
        _require(
            {
                "buffer_size": self.buffer_size >= 1,
                "learning_starts": self.learning_starts >= 0,
                "batch_size": self.batch_size >= 1,
                "gamma": 0.0 <= self.gamma <= 1.0,
                "train_freq": self.train_freq >= 1,
                "gradient_steps": self.gradient_steps >= 1,
                "target_update_interval": self.target_update_interval >= 1,
                "exploration_fraction": 0.0 < self.exploration_fraction <= 1.0,
                "exploration_final_eps": 0.0 <= self.exploration_final_eps <= 1.0,
            },
            "settings",
        )


Settings = PPOSettings | DQNSettings
SETTINGS: dict[str, type[PPOSettings] | type[DQNSettings]] = {
    "ppo": PPOSettings,
    "dqn": DQNSettings,
}


def _dataclass_from_json(kind: type[Any], data: Mapping[str, Any], name: str) -> Any:
    """Rebuild a flat frozen dataclass from JSON (lists back to tuples); unknown keys refused."""
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValidationError(f"{name}: unknown keys {unknown}", field=name)
    try:
        return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
    except TypeError as exc:
        raise ValidationError(f"{name}: {exc}", field=name) from None


@dataclass(frozen=True)
class EnvSpec:
    """Which simulator to train on and how it is configured.

    ``world`` is the app's :class:`PricingConfig` or :class:`AdvisorConfig` (``None``:
    the defaults); ``market`` is the advisor's market (default: 2013-01 to 2014-06
    replayed); ``delayed`` is the advisor's reward view; ``max_episode_steps`` truncates
    episodes (an advisor episode is one user, so shorter episodes show more users).
    """

    app: App = "advisor"
    world: PricingConfig | AdvisorConfig | None = None
    market: MarketSpec | None = None
    delayed: bool = False
    max_episode_steps: int | None = None

    def __post_init__(self) -> None:
        if self.app not in get_args(App):
            raise ValidationError(f"unknown app {self.app!r}", field="env.app")
        world_type = PricingConfig if self.app == "pricing" else AdvisorConfig
        if self.world is not None and not isinstance(self.world, world_type):
            raise ValidationError(
                f"the {self.app} env takes a {world_type.__name__}", field="env.world"
            )
        if self.app == "pricing" and (self.market is not None or self.delayed):
            raise ValidationError("market and delayed are advisor settings", field="env.market")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValidationError("max_episode_steps must be >= 1", field="env.max_episode_steps")

    @property
    def env_id(self) -> str:
        return PRICING_ENV_ID if self.app == "pricing" else ADVISOR_ENV_ID

    def make(self) -> gym.Env[Any, Any]:
        """A fresh environment (one per vectorized worker)."""
        register_envs()
        kwargs: dict[str, Any] = {}
        if self.world is not None:
            kwargs["config"] = self.world
        if self.app == "advisor":
            kwargs["market"] = self.market or TRAINING_MARKET
            kwargs["delayed"] = self.delayed
        return gym.make(self.env_id, max_episode_steps=self.max_episode_steps, **kwargs)

    def to_json(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "world": None if self.world is None else asdict(self.world),
            "market": None if self.market is None else asdict(self.market),
            "delayed": self.delayed,
            "max_episode_steps": self.max_episode_steps,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EnvSpec:
        app = data.get("app", "advisor")
        world_type = PricingConfig if app == "pricing" else AdvisorConfig
        world, market = data.get("world"), data.get("market")
        return cls(
            app=app,
            world=None if world is None else _dataclass_from_json(world_type, world, "env.world"),
            market=None if market is None else _dataclass_from_json(MarketSpec, market, "market"),
            delayed=bool(data.get("delayed", False)),
            max_episode_steps=data.get("max_episode_steps"),
        )


@dataclass(frozen=True)
class OnlineConfig:
    """One online training run. ``None`` fields resolve to the algorithm's default at once."""

    algo: Algo = "ppo"
    env: EnvSpec = field(default_factory=EnvSpec)
    total_timesteps: int = 20_000
    net_arch: tuple[int, ...] = (64, 64)
    activation: Activation | None = None
    learning_rate: float | None = None
    seed: int = 0
    n_envs: int = 1
    settings: Settings | None = None

    def __post_init__(self) -> None:
        if self.algo not in SETTINGS:
            raise ValidationError(
                f"unknown algorithm {self.algo!r}; known {list(SETTINGS)}", field="algo"
            )
        settings = self.settings or SETTINGS[self.algo]()
        if not isinstance(settings, SETTINGS[self.algo]):
            raise ValidationError(
                f"{self.algo} takes {SETTINGS[self.algo].__name__}", field="settings"
            )
        activation = self.activation or DEFAULT_ACTIVATION[self.algo]
        if activation not in get_args(Activation):
            raise ValidationError(f"unknown activation {activation!r}", field="activation")
        learning_rate = (
            DEFAULT_LEARNING_RATE[self.algo] if self.learning_rate is None else self.learning_rate
        )
        if not learning_rate > 0.0:
            raise ValidationError("learning_rate must be positive", field="learning_rate")
        net_arch = tuple(int(w) for w in self.net_arch)
        if any(w < 1 for w in net_arch):
            raise ValidationError("hidden layer widths must be >= 1", field="net_arch")
        if self.total_timesteps < 1 or self.n_envs < 1:
            raise ValidationError("total_timesteps and n_envs must be >= 1", field="n_envs")
        rollout = settings.n_steps * self.n_envs if isinstance(settings, PPOSettings) else 0
        if isinstance(settings, PPOSettings) and rollout % settings.batch_size:
            raise ValidationError(
                "PPO: n_steps * n_envs must be a multiple of batch_size",
                field="settings.batch_size",
            )
        object.__setattr__(self, "settings", settings)
        object.__setattr__(self, "activation", activation)
        object.__setattr__(self, "learning_rate", float(learning_rate))
        object.__setattr__(self, "net_arch", net_arch)

    def to_json(self) -> dict[str, Any]:
        assert self.settings is not None
        return {
            "algo": self.algo,
            "env": self.env.to_json(),
            "total_timesteps": self.total_timesteps,
            "net_arch": list(self.net_arch),
            "activation": self.activation,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "n_envs": self.n_envs,
            "settings": asdict(self.settings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OnlineConfig:
        algo = data.get("algo", "ppo")
        if algo not in SETTINGS:
            raise ValidationError(f"unknown algorithm {algo!r}", field="algo")
        settings = data.get("settings")
        return cls(
            algo=algo,
            env=EnvSpec.from_json(data.get("env") or {}),
            total_timesteps=int(data.get("total_timesteps", 20_000)),
            net_arch=tuple(data.get("net_arch", (64, 64))),
            activation=data.get("activation"),
            learning_rate=data.get("learning_rate"),
            seed=int(data.get("seed", 0)),
            n_envs=int(data.get("n_envs", 1)),
            settings=None
            if settings is None
            else _dataclass_from_json(SETTINGS[algo], settings, "settings"),
        )

    def with_seed(self, seed: int) -> OnlineConfig:
        return replace(self, seed=seed)


def _progress_callback(report: Progress, total: int) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class ProgressCallback(BaseCallback):
        """Calls ``report(done, total)`` about a hundred times a run, and once at its end."""

        def __init__(self) -> None:
            super().__init__()
            self.every = max(1, total // 100)
            self.reported = 0

        def _on_step(self) -> bool:
            if self.num_timesteps - self.reported >= self.every:
                self.reported = self.num_timesteps
                report(min(self.num_timesteps, total), total)
            return True

        def _on_training_end(self) -> None:
            report(min(self.num_timesteps, total), total)

    return ProgressCallback()


def build_model(config: OnlineConfig) -> Any:
    """The untrained SB3 model for ``config``: seeded environments and initial weights."""
    import torch
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(config.env.make, n_envs=config.n_envs, seed=config.seed)
    activation = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[str(config.activation)]
    policy_kwargs = {"net_arch": list(config.net_arch), "activation_fn": activation}
    algorithm = PPO if config.algo == "ppo" else DQN
    assert config.settings is not None and config.learning_rate is not None  # resolved
    return algorithm(
        "MlpPolicy",
        env,
        learning_rate=config.learning_rate,
        policy_kwargs=policy_kwargs,
        seed=config.seed,
        device="cpu",  # small MLPs: a GPU would only add transfers
        **asdict(config.settings),
    )


def train(config: OnlineConfig, *, progress: Progress | None = None, threads: int = 1) -> Any:
    """Train ``config`` and return the SB3 model (export it with ``export_sb3``).

    ``threads`` is torch's intra-op thread count for the run (restored afterwards); the
    same config on the same thread count gives bit-identical weights.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = build_model(config)
        total = config.total_timesteps
        callback = None if progress is None else _progress_callback(progress, total)
        model.learn(total_timesteps=config.total_timesteps, callback=callback)
    finally:
        torch.set_num_threads(previous)
    return model


def save_online(
    directory: Path | str,
    model: Any,
    config: OnlineConfig,
    *,
    name: str,
    created_at: float,
    evaluation: Mapping[str, Any] | None = None,
) -> Manifest:
    """Export ``model`` and save it as a policy artifact with ``config`` as its training config."""
    # both envs build observations in schema column order and read action i as the
    # catalog's i-th action, so the exported policy needs no reordering
    schema, catalog = app_spaces(config.env.app)
    policy = export_sb3(model, catalog, schema=schema)
    reward = pricing_reward if config.env.app == "pricing" else advisor_reward
    return save_policy(
        directory,
        policy,
        name=name,
        schema=schema,
        catalog=catalog,
        reward_spec_hash=reward.hash,
        training_config={
            **config.to_json(),
            "trainer": f"stable-baselines3=={importlib.metadata.version('stable-baselines3')}",
        },
        evaluation=evaluation,
        created_at=created_at,
    )
