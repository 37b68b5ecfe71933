"""``rlops evaluate`` and ``rlops import {obd,dsjson}``.

Only typer and the standard library are imported here; estimators, pandas and
matplotlib load inside the commands, so ``rlops --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

import_app = typer.Typer(help="Bring existing logs in as rlops examples.", no_args_is_help=True)


def evaluate(
    log: Annotated[Path, typer.Argument(help="Examples as JSON lines, or a Parquet snapshot.")],
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy", "-p", help="'logging', 'uniform' or 'always:ACTION_ID' (repeatable)."
        ),
    ] = None,
    reward_model: Annotated[
        str, typer.Option(help="ridge, logistic, gbm or none (no DM/DR).")
    ] = "ridge",
    folds: Annotated[int, typer.Option(help="Cross-fitting folds of the reward model.")] = 5,
    interval: Annotated[str, typer.Option(help="bootstrap or normal.")] = "bootstrap",
    level: Annotated[float, typer.Option(help="Interval level.")] = 0.95,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and the folds.")] = 0,
    clip: Annotated[float, typer.Option(help="Weight cap of clipped IPS and Switch-DR.")] = 10.0,
    shrinkage: Annotated[float, typer.Option(help="Lambda of DR-OS.")] = 10.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    plot_out: Annotated[Path | None, typer.Option("--plot", help="Write a plot here.")] = None,
) -> None:
    """Estimate target policies' values from a logged dataset, with intervals."""
    from rich.console import Console

    from rlops.core.errors import ValidationError
    from rlops.ope import (
        DROS,
        IPS,
        SNDR,
        SNIPS,
        Bootstrap,
        DirectMethod,
        DoublyRobust,
        Estimator,
        Normal,
        SwitchDR,
        estimate_all,
    )
    from rlops.ope.data import (
        LoggedBandit,
        always_policy,
        logging_policy,
        read_examples,
        uniform_policy,
    )
    from rlops.ope.diagnostics import diagnose
    from rlops.ope.report import PolicyReport, plot, table
    from rlops.ope.reward_models import KINDS, RewardModel

    console = Console()
    try:
        logged = LoggedBandit.from_examples(read_examples(log))
        estimators: list[Estimator] = [IPS(), IPS(clip=clip), SNIPS()]
        q_hat = None
        if reward_model != "none":
            if reward_model not in KINDS:
                raise ValidationError(
                    f"unknown reward model {reward_model!r}", field="reward_model"
                )
            model = RewardModel(kind=reward_model, n_folds=folds, seed=seed)
            q_hat = model.fit_predict(
                context=logged.context,
                action=logged.action,
                reward=logged.reward,
                n_actions=len(logged.action_ids),
            )
            estimators += [
                DirectMethod(),
                DoublyRobust(),
                SNDR(),
                SwitchDR(switch=clip),
                DROS(shrinkage=shrinkage),
            ]
        if interval not in ("bootstrap", "normal"):
            raise ValidationError("interval must be bootstrap or normal", field="interval")
        config = (
            Bootstrap(level=level, n_resamples=resamples, seed=seed)
            if interval == "bootstrap"
            else Normal(level=level)
        )
        reports = []
        for name in policy or ["logging", "uniform"]:
            if name == "logging":
                dist = logging_policy(logged)
            elif name == "uniform":
                dist = uniform_policy(logged)
            elif name.startswith("always:"):
                dist = always_policy(logged, name.removeprefix("always:"))
            else:
                raise ValidationError(f"unknown policy {name!r}", field="policy")
            data = logged.inputs(dist, q_hat)
            results = estimate_all(estimators, data, interval_config=config)
            reports.append(
                PolicyReport(policy=name, estimates=tuple(results), diagnostics=diagnose(data))
            )
    except ValidationError as error:
        console.print(f"[red]error[/red]: {error.message}")
        raise typer.Exit(code=2) from None
    console.print(table(reports))
    for report in reports:
        console.print(
            f"{report.policy}: {report.diagnostics.verdict} ({report.diagnostics.reason})"
        )
    if json_out is not None:
        json_out.write_text(json.dumps([r.to_json() for r in reports], indent=2) + "\n")
    if plot_out is not None:
        plot(reports, plot_out)
        console.print(f"plot: {plot_out}")


@import_app.command("obd")
def import_obd(
    out: Annotated[Path, typer.Option(help="Write examples here as JSON lines.")],
    source: Annotated[
        Path | None, typer.Option(help="obp sdist tarball or extracted tree (else download).")
    ] = None,
    campaign: Annotated[str, typer.Option(help="random or bts.")] = "random",
    cache: Annotated[Path, typer.Option(help="Where to keep the downloaded sdist.")] = Path(
        ".cache/obp"
    ),
    limit: Annotated[int | None, typer.Option(help="Keep the first N rows.")] = None,
) -> None:
    """The Open Bandit Dataset sample shipped inside obp, as rlops examples."""
    from rlops.ope.importers import fetch_obd_sdist, read_obd

    if campaign not in ("random", "bts"):
        raise typer.BadParameter("campaign must be random or bts")
    path = source if source is not None else fetch_obd_sdist(cache)
    log = read_obd(path, campaign="random" if campaign == "random" else "bts", limit=limit)
    _write(out, [e.to_json() for e in log.examples])
    typer.echo(f"wrote {len(log.examples)} examples to {out}")


@import_app.command("dsjson")
def import_dsjson(
    path: Annotated[Path, typer.Argument(help="A VW DSJSON file.")],
    out: Annotated[Path, typer.Option(help="Write examples here as JSON lines.")],
) -> None:
    """Vowpal Wabbit decision-service (DSJSON) logs as rlops examples."""
    from rlops.ope.importers import read_dsjson

    examples = read_dsjson(path)
    _write(out, [e.to_json() for e in examples])
    typer.echo(f"wrote {len(examples)} examples to {out}")


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
