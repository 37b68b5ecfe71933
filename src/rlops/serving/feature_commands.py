"""``rlops features load``: a batch job's Parquet file into the online feature store.

Errors print their code and message on stderr and exit 2, having written nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

features_app = typer.Typer(help="Load batch features into the online store.", no_args_is_help=True)


@features_app.command("load")
def load(
    path: Annotated[Path, typer.Argument(help="Parquet file: a key column + feature columns.")],
    app_name: Annotated[str, typer.Option("--app", help="pricing or advisor")],
    store: Annotated[
        str,
        typer.Option(envvar="RLOPS_FEATURES", help="Store URL: redis://host:port/db or memory."),
    ] = "redis://127.0.0.1:6379/0",
    ttl: Annotated[
        float,
        typer.Option(help="Seconds the rows live; 0 keeps them until overwritten."),
    ] = 7200.0,
    key: Annotated[str, typer.Option(help="Column holding the unit ids.")] = "unit_id",
    prefix: Annotated[str, typer.Option(help="Redis key prefix.")] = "rlops:features",
) -> None:
    """Check the whole file against the app's schema, then load it as one atomic batch.

    The default TTL is two hourly batches, so one missed run still serves features and a
    stopped batch job ends in schema defaults rather than stale values.
    """
    from rlops.core.errors import RlopsError
    from rlops.serving.feature_load import app_schema, load_features
    from rlops.serving.feature_store import open_feature_store

    try:
        schema = app_schema(app_name)
        options = {"prefix": prefix} if store.startswith(("redis://", "rediss://")) else {}
        online = open_feature_store(store, app_name, **options)
        try:
            count = load_features(
                path, online, schema, key=key, ttl_seconds=None if ttl == 0 else ttl
            )
        finally:
            online.close()
    except RlopsError as error:
        typer.secho(f"error ({error.code}): {error.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    note = " (memory store: checked only, nothing persists)" if store.startswith("memory") else ""
    typer.echo(f"loaded {count} units of {app_name} features from {path}{note}")
