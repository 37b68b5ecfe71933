"""``rlops loop``: the retraining loop as a command (one step with --once, else forever)."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

LOG_HELP = "Decision log URL (sqlite:///path or postgresql://...)."


def loop(
    app_name: Annotated[str, typer.Option("--app", help="pricing or advisor")],
    log: Annotated[str, typer.Option(envvar="RLOPS_LOG", help=LOG_HELP)] = (
        "sqlite:///rlops-data/log.db"
    ),
    registry: Annotated[Path, typer.Option(envvar="RLOPS_REGISTRY", help="Registry root.")] = Path(
        "rlops-data/registry"
    ),
    index: Annotated[
        str | None, typer.Option(envvar="RLOPS_REGISTRY_INDEX", help="Registry index URL.")
    ] = None,
    experiment: Annotated[
        Path, typer.Option(help="Experiment file the servers follow (created if missing).")
    ] = Path("rlops-data/experiment.json"),
    state: Annotated[Path, typer.Option(help="Loop state, journal and snapshots.")] = Path(
        "rlops-data/loop"
    ),
    config: Annotated[
        Path | None, typer.Option(help="Loop config JSON (see rlops.pipeline.loop_config).")
    ] = None,
    min_new_examples: Annotated[
        int | None, typer.Option(help="Retrain once this many new examples joined.")
    ] = None,
    engine: Annotated[str | None, typer.Option(help="local or ray.")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between steps.")] = 60.0,
    once: Annotated[bool, typer.Option(help="Take one step and exit.")] = False,
) -> None:
    """Retrain when enough new rewards have joined; gate, canary, promote or roll back."""
    from dataclasses import replace

    from rlops.core.errors import RlopsError
    from rlops.pipeline.loop import RetrainingLoop
    from rlops.pipeline.loop_config import LoopConfig
    from rlops.registry.commands import opened
    from rlops.store import open_log

    try:
        data = json.loads(config.read_text()) if config is not None else {}
        settings = LoopConfig.from_json({"app": app_name, **data})
        if min_new_examples is not None:
            settings = replace(settings, min_new_examples=min_new_examples)
        if engine is not None:
            settings = replace(settings, engine=engine)  # type: ignore[arg-type]  # checked
    except (OSError, json.JSONDecodeError, RlopsError) as error:
        message = error.message if isinstance(error, RlopsError) else str(error)
        typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    with opened(registry, index) as reg, open_log(log) as decision_log:
        try:
            runner = RetrainingLoop(
                settings, log=decision_log, registry=reg, experiment=experiment, directory=state
            )
        except RlopsError as error:
            typer.secho(f"error: {error.message}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None
        if once:
            events = runner.step()
            for event in events:
                typer.echo(f"{event.kind} {event.version or ''}: {event.reason}")
            if not events:
                typer.echo(f"nothing to do: {runner.new_examples()} new examples")
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            runner.run_forever(interval=interval, stop=stop)
        except KeyboardInterrupt:
            stop.set()
