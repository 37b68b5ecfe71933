"""``rlops join`` with a stream transport or several workers (the CLI stays thin)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer

from rlops.pipeline.stream_worker import CycleFault, StreamReport
from rlops.rewards.join import JoinConfig

if TYPE_CHECKING:
    from rlops.store.log import DecisionLog

#: Test-only: ``hang_before_ack:PATH`` makes the first worker to get there (the one that
#: creates PATH, writing its pid) stop for good after appending a batch and before
#: acknowledging it, so a test can SIGKILL it at exactly that point.
FAULT_ENV = "RLOPS_STREAM_FAULT"

log = logging.getLogger(__name__)


def fault_from_env() -> CycleFault | None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None
    kind, _, path = spec.partition(":")
    if kind != "hang_before_ack" or not path:
        raise SystemExit(f"{FAULT_ENV}: unknown fault {spec!r}")

    def fault(point: str) -> None:
        if point != "appended":
            return
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # another worker already took the fault: once per run
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        while True:
            time.sleep(3600)

    return fault


def with_window(config: JoinConfig, seconds: float) -> JoinConfig:
    """``config`` waiting ``seconds`` instead (per-signal windows shortened to fit)."""
    windows = {k: min(v, seconds) for k, v in config.signal_windows.items()}
    return replace(config, window_seconds=seconds, signal_windows=windows)


def join_stream(
    *, log: str, configs: Sequence[JoinConfig], follow: bool, batch_size: int, url: str
) -> int:
    """One stream join worker in this process; returns the exit code."""
    from rlops.core.errors import RlopsError
    from rlops.pipeline.stream_worker import StreamJoinWorker
    from rlops.store import open_log
    from rlops.stream.config import parse_stream_url
    from rlops.stream.consumer import RedisConsumer

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    try:
        config = parse_stream_url(url)
        decision_log = open_log(log)
        consumer = RedisConsumer(config, block_ms=100)
        worker = StreamJoinWorker(
            decision_log,
            consumer,
            configs,
            batch_size=batch_size,
            fault=fault_from_env(),
        )
    except RlopsError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    try:
        total: StreamReport = worker.run(stop=stop, drain=not follow)
    finally:
        consumer.close()
        decision_log.close()
    j = total.join
    print(
        f"worker {consumer.name}: {total.entries} entries ({total.decisions} decisions,"
        f" {total.outcomes} outcomes, {total.dead_letters} dead letters, {total.claimed}"
        f" claimed from stale consumers); joined {j.joined} ({j.defaulted} defaulted),"
        f" {j.late_examples} late revisions",
        flush=True,
    )
    return 0


def supervise_join(
    workers: int,
    *,
    log: str,
    apps: Sequence[str],
    follow: bool,
    interval: float,
    batch_size: int,
    transport: str,
    window: float | None = None,
) -> int:
    """Run ``workers`` copies of ``rlops join --workers 1`` under a supervisor."""
    from rlops.pipeline.supervisor import Supervisor, SupervisorConfig

    argv = [
        sys.executable,
        "-c",
        "from rlops.cli import main; main()",
        "join",
        "--workers",
        "1",
        "--log",
        log,
        "--transport",
        transport,
        "--batch-size",
        str(batch_size),
        "--interval",
        str(interval),
        "--follow" if follow else "--no-follow",
        *[arg for app in apps for arg in ("--app", app)],
        *(["--window", repr(window)] if window is not None else []),
    ]
    supervisor = Supervisor(lambda index: argv, SupervisorConfig(workers=workers))
    supervisor.install_signals()
    return supervisor.run()


__all__ = ["FAULT_ENV", "fault_from_env", "join_stream", "supervise_join", "with_window"]


def join_log(
    log: str,
    configs: list[Any],
    follow: bool,
    interval: float,
    batch_size: int,
    online: tuple[str, list[str], int, float] | None,
    registry: Path,
) -> int:
    """One join worker over the log in this process (the log transport); the exit code."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from rlops.core.errors import RlopsError
    from rlops.pipeline.join_worker import JoinWorker
    from rlops.store import open_log

    try:
        decision_log = open_log(log)
        hooks = []
        if online is not None:
            target, chosen, publish_every, kl_bound = online
            hooks.append(
                online_updater(decision_log, target, chosen, publish_every, kl_bound, registry)
            )
        worker = JoinWorker(decision_log, configs, batch_size=batch_size, hooks=hooks)
    except RlopsError as error:
        typer.secho(f"error: {error.message}", err=True, fg=typer.colors.RED)
        return 2
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
    return 0


def online_updater(
    decision_log: DecisionLog,
    target: str,
    apps: list[str],
    every: int,
    kl_bound: float,
    registry_root: Path,
) -> Callable[[float], object]:
    """The poll hook of an updater for ``NAME[:ALIAS]``; it reports what it publishes."""
    from rlops.core.errors import ValidationError
    from rlops.pipeline.online_bandit import OnlineBanditUpdater, OnlineUpdateConfig
    from rlops.registry.registry import Registry

    if len(apps) != 1:
        raise ValidationError(
            f"--online-bandit learns for one application; choose it with --app (of {apps})",
            field="app",
        )
    name, _, alias = target.partition(":")
    config = OnlineUpdateConfig(
        app=apps[0], name=name, alias=alias or "production", every_examples=every, kl_bound=kl_bound
    )
    updater = OnlineBanditUpdater(decision_log, Registry.open(registry_root), config)

    def poll(now: float) -> object:
        report = updater.poll(now)
        if report.published:
            typer.echo(f"published {config.name} {report.published} to {config.alias}")
        elif report.refused:
            typer.echo(f"not published: {report.refused}")
        return report

    return poll
