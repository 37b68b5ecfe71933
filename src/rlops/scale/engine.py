"""Where long work runs: in this process (``local``) or on a Ray cluster (``ray``).

The choice is one small value, :class:`EngineConfig`, that every scale-out entry point
takes (``run_battery``, ``tune_offline``, the gate, the CLI's ``--engine``). Ray is an
optional extra (``pip install 'rlops[ray]'``): this module never imports it at import
time, so ``import rlops``, the CLI and the embedded path work without it, and asking for
``ray`` without it installed fails with an error that names the extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from rlops.core.errors import RlopsError, ValidationError

EngineKind = Literal["local", "ray"]
ENGINES: tuple[str, ...] = ("local", "ray")
RAY_EXTRA = "rlops[ray]"


class RayUnavailableError(RlopsError):
    """``--engine ray`` was asked for on an install without the ``ray`` extra."""

    code = "ray_unavailable"


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """``kind`` ``local`` or ``ray``; for Ray, the cluster to join and the local fallback.

    ``address`` joins a running cluster (``ray://host:10001``, ``auto``); without one,
    Ray starts a private local "cluster" of ``num_cpus`` CPUs in this process's session.
    ``workers`` caps the battery's actor pool (default: one per cluster CPU).
    """

    kind: EngineKind = "local"
    address: str | None = None
    num_cpus: int = 2
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise ValidationError(
                f"unknown engine {self.kind!r}; known: {', '.join(ENGINES)}", field="engine"
            )
        if self.num_cpus < 1:
            raise ValidationError("num_cpus must be at least 1", field="num_cpus")
        if self.workers is not None and self.workers < 1:
            raise ValidationError("workers must be at least 1", field="workers")
        if self.kind == "local" and self.address is not None:
            raise ValidationError("a Ray address needs --engine ray", field="address")


def engine_config(engine: str | EngineConfig, *, address: str | None = None) -> EngineConfig:
    """``engine`` as an :class:`EngineConfig` (a name is checked, with ``address`` for Ray)."""
    if isinstance(engine, EngineConfig):
        return engine
    if engine not in ENGINES:
        raise ValidationError(
            f"unknown engine {engine!r}; known: {', '.join(ENGINES)}", field="engine"
        )
    return EngineConfig(kind=engine, address=address)  # type: ignore[arg-type]  # checked above


def import_ray() -> ModuleType:
    """The ``ray`` module, or a clear error naming the extra that installs it."""
    try:
        import ray
    except ImportError as missing:
        raise RayUnavailableError(
            f"the ray engine needs Ray: pip install '{RAY_EXTRA}' ({missing})", field="engine"
        ) from None
    return ray


def ensure_ray(config: EngineConfig) -> ModuleType:
    """Ray, connected: to ``config.address`` if given, else a local ``num_cpus`` cluster.

    An already-initialised Ray (a test fixture, a driver script) is used as it is, so a
    caller who set Ray up their own way keeps it.
    """
    ray = import_ray()
    if not ray.is_initialized():
        if config.address is not None:
            ray.init(address=config.address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=config.num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
    return ray
