"""``rlops monitor``: the alert rules file, and a training snapshot's reference."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

monitor_app = typer.Typer(
    help="Monitoring: alert rules and drift references.", no_args_is_help=True
)


@monitor_app.command("rules")
def rules(
    mode_collapse_share: Annotated[float, typer.Option(help="Largest action share.")] = 0.8,
    psi: Annotated[float, typer.Option(help="Feature drift (PSI) threshold.")] = 0.25,
    fallback_rate: Annotated[float, typer.Option(help="Share answered by the rules.")] = 0.05,
) -> None:
    """Print the Prometheus alert rules with these thresholds."""
    from rlops.monitoring.alert_rules import AlertThresholds, default_rules, render_prometheus

    thresholds = AlertThresholds(
        mode_collapse_share=mode_collapse_share, psi=psi, fallback_rate=fallback_rate
    )
    typer.echo(render_prometheus(default_rules(thresholds)), nl=False)


@monitor_app.command("reference")
def reference(
    snapshot: Annotated[Path, typer.Option(help="The training snapshot (Parquet).")],
    app_name: Annotated[str, typer.Option("--app", help="pricing or advisor")],
    out: Annotated[Path, typer.Option(help="Directory for reference.json.")],
) -> None:
    """Build the drift and coverage reference of a training snapshot (serve --config
    '{"reference": ".../reference.json"}')."""
    from rlops.apps.spaces import app_schema
    from rlops.core.errors import RlopsError
    from rlops.monitoring.reference import Reference

    try:
        ref = Reference.from_snapshot(snapshot, app_schema(app_name))
        path = ref.write(out)
    except RlopsError as error:
        typer.echo(f"error ({error.code}): {error.message}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {path}")
