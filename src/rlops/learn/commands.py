"""The ``rlops train`` command: parse, train with a progress bar, save, print a summary."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from rlops.core.errors import RlopsError

if TYPE_CHECKING:
    from rlops.learn.data import LoggedData
    from rlops.scale.engine import EngineConfig
    from rlops.scale.tune import TuneResult


@dataclass(frozen=True, slots=True)
class TuneRequest:
    """``rlops train --tune``: the space, how many draws (None: its grid), how to score."""

    space: str | None
    num_samples: int | None
    estimator: str
    holdout: float
    engine: EngineConfig


def _config(text: str | None, option: str = "--config") -> dict[str, Any]:
    """``--config`` (or ``--space``) is inline JSON or the path of a JSON file."""
    if not text:
        return {}
    raw = Path(text).read_text() if Path(text).is_file() else text
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{option} is neither a JSON file nor JSON: {exc}") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{option} must be a JSON object")
    return data


def _tune(
    learner: str, data: LoggedData, settings: dict[str, Any], seed: int, request: TuneRequest
) -> tuple[dict[str, Any], TuneResult]:
    """Search ``request``'s space; ``settings`` (``--config``) hold for every candidate."""
    from rlops.scale.tune import tune_offline

    space = _config(request.space, "--space")
    if not space:
        raise typer.BadParameter("--tune needs --space")
    overlap = set(space) & set(settings)
    if overlap:
        raise typer.BadParameter(f"{sorted(overlap)} are in both --config and --space")
    result = tune_offline(
        learner,
        data,
        space,
        engine=request.engine,
        num_samples=request.num_samples,
        seed=seed,
        estimator=request.estimator,  # type: ignore[arg-type]  # checked by tune_offline
        holdout=request.holdout,
        fixed=settings,
    )
    typer.echo(result.table())
    return {**settings, **result.best_config}, result


def train_command(
    *,
    app: str,
    learner: str,
    out: Path,
    snapshot: Path | None,
    config: str | None,
    seed: int,
    parent: Path | None,
    old_snapshot: Path | None,
    old_fraction: float,
    tuning: TuneRequest | None = None,
) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from rlops.apps.spaces import app_spaces
    from rlops.learn.train import LEARNERS, ONLINE, save_trained, train_offline

    settings = _config(config)
    if learner not in LEARNERS:
        raise typer.BadParameter(f"--learner must be one of {list(LEARNERS)}")
    if tuning is not None and learner in ONLINE:
        raise typer.BadParameter(f"--tune applies to offline learners, not {learner}")
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(f"training {learner}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            if learner in ONLINE:
                from rlops.learn.sb3 import OnlineConfig, save_online, train

                env = {"app": app, **settings.pop("env", {})}
                online = OnlineConfig.from_json(
                    {"algo": learner, "seed": seed, "env": env, **settings}
                )
                model = train(online, progress=progress)
                manifest = save_online(
                    out, model, online, name=f"{app}-{learner}", created_at=time.time()
                )
            else:
                from rlops.learn.data import LoggedData
                from rlops.learn.finetune import mix
                from rlops.policies.artifact import load_policy

                if snapshot is None:
                    raise typer.BadParameter(f"--snapshot is required for {learner}")
                schema, catalog = app_spaces(app)
                data = LoggedData.from_snapshot(snapshot, schema, catalog)
                loaded = None if parent is None else load_policy(parent)
                if old_snapshot is not None:
                    old = LoggedData.from_snapshot(old_snapshot, schema, catalog)
                    data = mix(old, data, old_fraction=old_fraction, seed=seed)
                evaluation: dict[str, Any] = {}
                if tuning is not None:
                    bar.update(task, description=f"tuning {learner}")
                    settings, tuned = _tune(learner, data, settings, seed, tuning)
                    evaluation["tuning"] = tuned.to_json()
                    bar.update(task, description=f"training {learner}")
                trained = train_offline(
                    learner, data, settings, seed=seed, parent=loaded, progress=progress
                )
                manifest = save_trained(
                    out, trained, app=app, created_at=time.time(), evaluation=evaluation
                )
        except RlopsError as error:
            typer.secho(f"error: {error.message}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2) from None
    typer.echo(f"{manifest.name} version {manifest.version} ({manifest.family}) -> {out}")
    training = manifest.evaluation.get("training", {})
    for key, value in training.items():
        typer.echo(f"  {key}: {value}")
