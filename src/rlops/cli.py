"""The ``rlops`` command line.

Each area registers its commands here, importing lazily inside the command so
``rlops --help`` stays fast and serving never imports training code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rlops.scale.engine import EngineConfig

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


EngineOption = Annotated[
    str, typer.Option("--engine", help="Where to run: local, or ray (needs rlops[ray]).")
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        envvar="RAY_ADDRESS",
        help="Ray cluster to join (ray://host:10001, auto); default: a local 2-CPU Ray.",
    ),
]


def _engine(engine: str, address: str | None) -> EngineConfig:
    """The ``--engine``/``--ray-address`` pair, checked (an unknown engine exits 2)."""
    from rlops.core.errors import RlopsError
    from rlops.scale.engine import engine_config

    try:
        return engine_config(engine, address=address if engine == "ray" else None)
    except RlopsError as error:
        raise _fail(error.message) from None


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


TransportOption = Annotated[
    str,
    typer.Option(
        "--transport",
        envvar="RLOPS_TRANSPORT",
        help="Where records arrive: 'log' (the log itself) or redis://host:port/db?stream=...",
    ),
]


@app.command()
def join(
    log: LogOption = DEFAULT_LOG,
    apps: Annotated[
        list[str] | None, typer.Option("--app", help="Application(s) to join (default: all).")
    ] = None,
    follow: Annotated[bool, typer.Option(help="Keep joining until interrupted.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between passes with --follow.")] = 5.0,
    batch_size: Annotated[int, typer.Option(help="Decisions per transaction.")] = 1000,
    transport: TransportOption = "log",
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes, restarted if they die.")
    ] = 1,
    window: Annotated[
        float | None,
        typer.Option(help="Override every app's reward window (seconds): backfills, tests."),
    ] = None,
    online_bandit: Annotated[
        str | None,
        typer.Option(
            "--online-bandit",
            metavar="NAME[:ALIAS]",
            help="After each pass, fold the new examples into the bandit at NAME's ALIAS "
            "(default production) and publish new versions within the trust region.",
        ),
    ] = None,
    publish_every: Annotated[
        int, typer.Option(help="With --online-bandit: publish every N examples folded in.")
    ] = 1000,
    kl_bound: Annotated[
        float, typer.Option(help="With --online-bandit: mean KL bound to the rules (nats).")
    ] = 0.5,
    registry: Annotated[
        Path, typer.Option(envvar="RLOPS_REGISTRY", help="Registry root, for --online-bandit.")
    ] = Path("rlops-data/registry"),
) -> None:
    """Join decisions whose reward window has closed with their outcomes into examples.

    With a Redis transport, workers first move stream entries into the log (acknowledging
    them after the commit); without --follow they stop once the stream is drained.
    With ``--online-bandit`` the bandit learns from each pass's examples as they are joined
    (one application per updater: ``--app`` names it when several are configured; the
    log transport and one worker).
    """
    from rlops.apps.defaults import join_configs
    from rlops.core.errors import RlopsError
    from rlops.stream import is_stream_url

    configs = join_configs()
    chosen = apps or sorted(configs)
    unknown = sorted(set(chosen) - set(configs))
    if unknown:
        raise _fail(f"unknown app(s) {unknown}; known: {sorted(configs)}")
    if window is not None:
        from rlops.pipeline.join_commands import with_window

        try:
            configs = {a: with_window(c, window) for a, c in configs.items()}
        except RlopsError as error:
            raise _fail(error.message) from None
    if online_bandit is not None and (workers > 1 or transport != "log"):
        raise _fail("--online-bandit runs in one worker over the log transport")
    if workers > 1:
        from rlops.pipeline.join_commands import supervise_join

        raise typer.Exit(
            supervise_join(
                workers,
                log=log,
                apps=chosen,
                follow=follow,
                interval=interval,
                batch_size=batch_size,
                transport=transport,
                window=window,
            )
        )
    if is_stream_url(transport):
        from rlops.pipeline.join_commands import join_stream

        raise typer.Exit(
            join_stream(
                log=log,
                configs=[configs[a] for a in chosen],
                follow=follow,
                batch_size=batch_size,
                url=transport,
            )
        )
    if transport != "log":
        raise _fail(f"unknown transport {transport!r}: use 'log' or redis://...")
    online = None if online_bandit is None else (online_bandit, chosen, publish_every, kl_bound)
    from rlops.pipeline.join_commands import join_log

    raise typer.Exit(
        join_log(log, [configs[a] for a in chosen], follow, interval, batch_size, online, registry)
    )


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
    tune: Annotated[
        int | None,
        typer.Option(help="Tune first: this many candidates drawn from --space (0: its grid)."),
    ] = None,
    space: Annotated[
        str | None, typer.Option(help="Search space for --tune: inline JSON or a JSON file.")
    ] = None,
    tune_estimator: Annotated[
        str, typer.Option(help="Held-out score for --tune: snips or dr.")
    ] = "snips",
    holdout: Annotated[float, typer.Option(help="Share of units held out for --tune.")] = 0.3,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
) -> None:
    """Train a policy from a snapshot (or the simulator) into a verified artifact.

    With --tune: candidate settings from --space are each trained on most units and
    scored off-policy on the held-out rest (on Ray Tune with --engine ray); the best is
    then trained on all the data, and the search is recorded in the artifact.
    """
    from rlops.learn.commands import TuneRequest, train_command

    tuning = None
    if tune is not None or space is not None:
        tuning = TuneRequest(
            space=space,
            num_samples=tune or None,
            estimator=tune_estimator,
            holdout=holdout,
            engine=_engine(engine, ray_address),
        )
    elif engine != "local":
        raise _fail("--engine applies to training only with --tune")

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
        tuning=tuning,
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
    transport: Annotated[
        str | None,
        typer.Option(help="Where accepted records go: log, or redis://host:port/db?stream=..."),
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
            "transport": transport,
            "features": features,
            "experiment": experiment,
            "tokens": tokens,
            "seed": seed,
        },
    )


@app.command()
def demo(
    which: Annotated[
        str | None, typer.Argument(help="pricing or advisor; both when left out.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory for the demo's logs and report.")] = Path(
        "demo-report"
    ),
    short: Annotated[
        bool, typer.Option("--short", help="A shortened run of every step (as CI runs it).")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="The simulated market's seed.")] = None,
) -> None:
    """Run the production loop end to end on simulated traffic and write a report.

    Rules serve, outcomes arrive late and are joined, a bandit and CQL are trained and
    evaluated, the better one is canaried and promoted, and a broken canary is rolled back.
    """
    from rlops.demo import run_demo, run_demos
    from rlops.demo.config import APPS

    if which is None:
        results = run_demos(out=out, short=short, seed=seed)
    elif which in APPS:
        results = {which: run_demo(which, out=out, short=short, seed=seed)}
    else:
        raise typer.BadParameter(f"unknown demo {which!r}; choose from {', '.join(APPS)}")
    # A gate that refuses every candidate is the system working; a broken canary left
    # serving is not.
    failed = [a for a, r in results.items() if not r["broken_rolled_back"]]
    if failed:
        typer.echo(f"the broken canary was not rolled back in: {', '.join(failed)}", err=True)
        raise typer.Exit(1)


@app.command()
def simulate(
    app_name: Annotated[str, typer.Option("--app", help="pricing or advisor")],
    policy: Annotated[str, typer.Option(help="baseline, bad or random")] = "baseline",
    seeds: Annotated[int, typer.Option(help="seeds per scenario")] = 3,
    json_out: Annotated[Path | None, typer.Option("--json", help="write results here")] = None,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
) -> None:
    """Run a policy on the scenario battery and print each metric with its interval."""
    from rlops.sim.cli import simulate_command

    raise typer.Exit(
        simulate_command(app_name, policy, seeds, json_out, _engine(engine, ray_address))
    )


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
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
) -> None:
    """Exit non-zero, naming each failing threshold, unless the policy passes the battery.

    With --version: gate a registered version (battery, off-policy bound, KL); store the record.
    """
    chosen_engine = _engine(engine, ray_address)
    if version is None:
        from rlops.sim.cli import gate_command

        raise typer.Exit(gate_command(app_name, policy, seeds, thresholds, chosen_engine))
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
        engine=chosen_engine,
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
# The retraining loop (issue 9).
from rlops.pipeline.loop_command import loop as _loop  # noqa: E402

app.command("loop")(_loop)
app.add_typer(monitor_app, name="monitor")


def main() -> None:
    app()
