"""The ``rlops train`` command: parse, train with a progress bar, save, print a summary."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from rlops.core.errors import RlopsError


def _config(text: str | None) -> dict[str, Any]:
    """``--config`` is inline JSON or the path of a JSON file."""
    if not text:
        return {}
    raw = Path(text).read_text() if Path(text).is_file() else text
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--config is neither a JSON file nor JSON: {exc}") from None
    if not isinstance(data, dict):
        raise typer.BadParameter("--config must be a JSON object")
    return data


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
) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from rlops.apps.spaces import app_spaces
    from rlops.learn.train import LEARNERS, ONLINE, save_trained, train_offline

    settings = _config(config)
    if learner not in LEARNERS:
        raise typer.BadParameter(f"--learner must be one of {list(LEARNERS)}")
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
                trained = train_offline(
                    learner, data, settings, seed=seed, parent=loaded, progress=progress
                )
                manifest = save_trained(out, trained, app=app, created_at=time.time())
        except RlopsError as error:
            typer.secho(f"error: {error.message}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2) from None
    typer.echo(f"{manifest.name} version {manifest.version} ({manifest.family}) -> {out}")
    training = manifest.evaluation.get("training", {})
    for key, value in training.items():
        typer.echo(f"  {key}: {value}")
