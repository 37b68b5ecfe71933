"""The ``rlops`` command line.

Each area registers its commands here, importing lazily inside the command so
``rlops --help`` stays fast and serving never imports training code.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="rlops",
    help="Run reinforcement-learning decision agents in production.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log_app = typer.Typer(help="Inspect and export the decision log.", no_args_is_help=True)
app.add_typer(log_app, name="log")

DEFAULT_LOG = "sqlite:///rlops-data/log.db"
LogOption = Annotated[
    str,
    typer.Option("--log", envvar="RLOPS_LOG", help="Log URL: sqlite:///path or postgresql://..."),
]


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


@app.command()
def join(
    log: LogOption = DEFAULT_LOG,
    apps: Annotated[
        list[str] | None, typer.Option("--app", help="Application(s) to join (default: all).")
    ] = None,
    follow: Annotated[bool, typer.Option(help="Keep joining until interrupted.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between passes with --follow.")] = 5.0,
    batch_size: Annotated[int, typer.Option(help="Decisions per transaction.")] = 1000,
) -> None:
    """Join decisions whose reward window has closed with their outcomes into examples."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from rlops.apps.defaults import join_configs
    from rlops.core.errors import RlopsError
    from rlops.pipeline.join_worker import JoinWorker
    from rlops.store import open_log

    configs = join_configs()
    chosen = apps or sorted(configs)
    unknown = sorted(set(chosen) - set(configs))
    if unknown:
        raise _fail(f"unknown app(s) {unknown}; known: {sorted(configs)}")
    try:
        decision_log = open_log(log)
        worker = JoinWorker(decision_log, [configs[a] for a in chosen], batch_size=batch_size)
    except RlopsError as error:
        raise _fail(error.message) from None
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True) as bar:
        task = bar.add_task("joining", total=None)
        done = {"examples": 0}

        def show(report: object) -> None:
            from rlops.store.log import JoinStepReport

            assert isinstance(report, JoinStepReport)
            done["examples"] += report.joined + report.late_examples
            bar.update(task, description=f"joining: {done['examples']:,} examples written")

        if follow:
            stop = threading.Event()
            try:
                result = worker.run_forever(interval=interval, stop=stop, progress=show)
            except KeyboardInterrupt:
                stop.set()
                result = None
        else:
            result = worker.run_once(progress=show)
    if result is not None:
        total = result.total
        typer.echo(
            f"joined {total.joined} ({total.defaulted} with the default reward), "
            f"{total.late_examples} late revisions from {total.late_outcomes} late outcomes, "
            f"{total.quarantined} outcomes quarantined, {total.released} released"
        )
    decision_log.close()


@log_app.command("stats")
def log_stats(
    log: LogOption = DEFAULT_LOG,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Counts of decisions, outcomes by status and examples."""
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from rlops.store import open_log

    with open_log(log) as decision_log:
        stats = decision_log.stats()
    if as_json:
        data = asdict(stats)
        data["decisions_pending"] = stats.decisions_pending
        data["outcomes_received"] = stats.outcomes_received
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    table = Table(title=f"decision log {log}")
    table.add_column("record")
    table.add_column("status")
    table.add_column("count", justify="right")
    table.add_row("decisions", "joined", f"{stats.decisions_joined:,}")
    table.add_row("decisions", "pending", f"{stats.decisions_pending:,}")
    table.add_row("decisions", "duplicates ignored", f"{stats.duplicate_decisions:,}")
    for status, count in stats.outcomes.items():
        table.add_row("outcomes", status, f"{count:,}")
    table.add_row("outcomes", "duplicates ignored", f"{stats.duplicate_outcomes:,}")
    table.add_row("examples", "current", f"{stats.examples_current:,}")
    table.add_row("examples", "default reward", f"{stats.examples_defaulted:,}")
    table.add_row("examples", "late revision", f"{stats.examples_late:,}")
    for spec, count in stats.reward_specs.items():
        table.add_row("examples", f"reward {spec}", f"{count:,}")
    Console().print(table)


@log_app.command("export")
def log_export(
    out: Annotated[Path, typer.Option(help="JSON-lines file to write.")],
    kind: Annotated[str, typer.Option(help="decisions, outcomes or examples.")] = "decisions",
    log: LogOption = DEFAULT_LOG,
    start: Annotated[float | None, typer.Option(help="From this Unix time.")] = None,
    end: Annotated[float | None, typer.Option(help="Before this Unix time.")] = None,
) -> None:
    """Export records as JSON lines (each line reads back with ``Record.from_json``)."""
    from rlops.store import open_log

    if kind not in ("decisions", "outcomes", "examples"):
        raise _fail(f"--kind must be decisions, outcomes or examples, not {kind!r}")
    with open_log(log) as decision_log:
        count = decision_log.export_jsonl(out, kind=kind, start=start, end=end)  # type: ignore[arg-type]  # checked above
    typer.echo(f"wrote {count} {kind} to {out}")


@app.command()
def snapshot(
    app_name: Annotated[str, typer.Option("--app", help="Application whose examples to take.")],
    out: Annotated[Path, typer.Option(help="Directory for the Parquet snapshot.")] = Path(
        "rlops-data/snapshots"
    ),
    reward_spec: Annotated[
        str | None, typer.Option(help="Reward hash (default: the app's current reward).")
    ] = None,
    log: LogOption = DEFAULT_LOG,
) -> None:
    """Write the current examples of an app to a content-addressed Parquet snapshot."""
    from rlops.apps.defaults import join_configs
    from rlops.core.errors import RlopsError
    from rlops.store import open_log
    from rlops.store.snapshot import write_snapshot

    configs = join_configs()
    spec = reward_spec or (configs[app_name].reward.hash if app_name in configs else None)
    with open_log(log) as decision_log:
        examples = decision_log.examples(app=app_name, reward_spec=spec)
    try:
        info = write_snapshot(examples, out)
    except RlopsError as error:
        raise _fail(error.message) from None
    typer.echo(f"snapshot {info.content_id}: {info.rows} examples -> {info.path}")


@app.command()
def train(
    app_name: Annotated[str, typer.Option("--app", help="pricing or advisor")],
    learner: Annotated[str, typer.Option(help="bandit, cql, bc, apprentice, ppo or dqn")],
    out: Annotated[Path, typer.Option(help="Artifact directory to write (must not exist).")],
    snapshot: Annotated[
        Path | None, typer.Option(help="Parquet snapshot to train on (offline learners).")
    ] = None,
    config: Annotated[
        str | None, typer.Option(help="Learner config: inline JSON or a JSON file.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    parent: Annotated[
        Path | None, typer.Option(help="Fine-tune this artifact (warm start).")
    ] = None,
    old_snapshot: Annotated[
        Path | None, typer.Option(help="Data the parent was trained on, mixed in.")
    ] = None,
    old_fraction: Annotated[float, typer.Option(help="Share of old rows in the mix.")] = 0.5,
) -> None:
    """Train a policy from a snapshot (or the simulator) into a verified artifact."""
    from rlops.learn.commands import train_command

    train_command(
        app=app_name,
        learner=learner,
        out=out,
        snapshot=snapshot,
        config=config,
        seed=seed,
        parent=parent,
        old_snapshot=old_snapshot,
        old_fraction=old_fraction,
    )


@app.command()
def serve(
    app_name: Annotated[str | None, typer.Option("--app", help="pricing or advisor")] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    registry: Annotated[str | None, typer.Option(help="Registry directory.")] = None,
    registry_index: Annotated[
        str | None, typer.Option(help="Registry index URL (default: SQLite in the directory).")
    ] = None,
    log: Annotated[
        str | None, typer.Option(help="Log URL: sqlite:///path or postgresql://…")
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="Feature store: memory or redis://host:port/db")
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment JSON file (arms, aliases, shares).")
    ] = None,
    tokens: Annotated[str | None, typer.Option(help="Tokens JSON file.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the per-request draws.")] = None,
    config: Annotated[
        Path | None, typer.Option(help="Server settings as JSON (flags override it).")
    ] = None,
) -> None:
    """Serve decisions over HTTP (the baseline rules on a fresh directory)."""
    from rlops.serving.serve_command import serve_command

    serve_command(
        config_file=config,
        host=host,
        port=port,
        workers=workers,
        overrides={
            "app": app_name,
            "registry": registry,
            "registry_index": registry_index,
            "log": log,
            "features": features,
            "experiment": experiment,
            "tokens": tokens,
            "seed": seed,
        },
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Directory for the demo's log and report.")] = Path(
        "demo-report"
    ),
    decisions: Annotated[int, typer.Option(help="Simulated decisions.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Run the loop on the embedded defaults and print what happened."""
    from rlops.demo import run_demo

    run_demo(out=out, n_decisions=decisions, seed=seed)


@app.command()
def simulate(
    app_name: Annotated[str, typer.Option("--app", help="pricing or advisor")],
    policy: Annotated[str, typer.Option(help="baseline, bad or random")] = "baseline",
    seeds: Annotated[int, typer.Option(help="seeds per scenario")] = 3,
    json_out: Annotated[Path | None, typer.Option("--json", help="write results here")] = None,
) -> None:
    """Run a policy on the scenario battery and print each metric with its interval."""
    from rlops.sim.cli import simulate_command

    simulate_command(app_name, policy, seeds, json_out)


@app.command()
def gate(
    app_name: Annotated[str, typer.Option("--app", help="pricing or advisor")],
    thresholds: Annotated[Path | None, typer.Option(help="JSON or TOML thresholds")] = None,
    policy: Annotated[str, typer.Option(help="baseline, bad or random")] = "baseline",
    seeds: Annotated[int, typer.Option(help="seeds per scenario")] = 3,
    version: Annotated[
        str | None,
        typer.Option(help="Gate this registered version and store the record (else --policy)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Registered policy (default: --app).")] = None,
    registry: Annotated[Path, typer.Option(envvar="RLOPS_REGISTRY", help="Registry root.")] = Path(
        "rlops-data/registry"
    ),
    index: Annotated[
        str | None, typer.Option(envvar="RLOPS_REGISTRY_INDEX", help="Registry index URL.")
    ] = None,
    log: LogOption = DEFAULT_LOG,
    since: Annotated[float, typer.Option(help="Recent logs: the last this many seconds.")] = 30
    * 86_400.0,
    reward_spec: Annotated[str | None, typer.Option(help="Reward hash of the examples.")] = None,
    estimator: Annotated[str, typer.Option(help="snips, ips, dr or sndr.")] = "snips",
    kl_bound: Annotated[float, typer.Option(help="Mean KL to the baseline, nats.")] = 0.5,
    baseline_floor: Annotated[float, typer.Option(help="Baseline probability floor.")] = 0.05,
    baseline: Annotated[str, typer.Option(help="KL baseline: baseline or random.")] = "baseline",
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    by: Annotated[str | None, typer.Option("--by", help="Who runs the gate.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
) -> None:
    """Exit non-zero, naming each failing threshold, unless the policy passes the battery.

    With --version: gate a registered version (battery, off-policy bound, KL); store the record.
    """
    if version is None:
        from rlops.sim.cli import gate_command

        raise typer.Exit(gate_command(app_name, policy, seeds, thresholds))
    from rlops.registry.gate_command import GateRequest, gate_version

    request = GateRequest(
        app=app_name,
        name=name or app_name,
        version=version,
        thresholds=thresholds,
        seeds=seeds,
        root=registry,
        index=index,
        log=log,
        since=since,
        reward_spec=reward_spec,
        estimator=estimator,
        kl_bound=kl_bound,
        baseline_floor=baseline_floor,
        baseline=baseline,
        resamples=resamples,
        by=by,
        as_json=as_json,
    )
    raise typer.Exit(gate_version(request))


# The policy registry (issue 6).
from rlops.registry.commands import registry_app  # noqa: E402

app.add_typer(registry_app, name="registry")

# Off-policy evaluation (issue 5): commands import their heavy modules lazily.
from rlops.ope import commands as _ope  # noqa: E402

app.command("evaluate")(_ope.evaluate)
app.add_typer(_ope.import_app, name="import")

# Online features (policy server issue): the command imports pyarrow and redis lazily.
from rlops.monitoring.commands import monitor_app  # noqa: E402
from rlops.serving.feature_commands import features_app  # noqa: E402

app.add_typer(features_app, name="features")
app.add_typer(monitor_app, name="monitor")


def main() -> None:
    app()
