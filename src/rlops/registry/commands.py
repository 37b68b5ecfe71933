"""``rlops registry list | show | diff | register | promote | rollback | history`` and the
registry side of ``rlops gate``.

Every command prints a table, or JSON with ``--json`` (the records' own ``to_json``).
Errors print their machine-readable code and message and exit 2, having changed nothing;
``rlops gate`` exits 1 when the version fails its gate (the failed record is stored).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rlops.core.errors import RlopsError
    from rlops.registry.registry import Registry

registry_app = typer.Typer(
    help="Policy versions, aliases, promotions and rollbacks.", no_args_is_help=True
)

RootOption = Annotated[
    Path,
    typer.Option("--registry", envvar="RLOPS_REGISTRY", help="Registry root (artifacts)."),
]
IndexOption = Annotated[
    str | None,
    typer.Option(
        "--index",
        envvar="RLOPS_REGISTRY_INDEX",
        help="Index URL: sqlite:///path or postgresql://...?schema=x (default: ROOT/index.db).",
    ),
]
RedisOption = Annotated[
    str | None,
    typer.Option("--redis", envvar="RLOPS_REDIS", help="Announce moves on this Redis (pub/sub)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who does this (default: $USER).")]
RevisionOption = Annotated[
    int | None,
    typer.Option("--expect-revision", help="Refuse unless the alias is at this revision."),
]
DEFAULT_ROOT = Path("rlops-data/registry")


def _fail(error: RlopsError) -> typer.Exit:
    typer.secho(f"error ({error.code}): {error.message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


@contextmanager
def opened(root: Path, index: str | None, redis: str | None = None) -> Iterator[Registry]:
    """The registry, closed afterwards; an :class:`RlopsError` inside becomes exit code 2."""
    from rlops.core.errors import RlopsError
    from rlops.registry.registry import Registry

    hooks = []
    if redis:
        from rlops.registry.watch_redis import RedisAnnouncer

        hooks.append(RedisAnnouncer(redis))
    try:
        registry = Registry.open(root, index, on_move=hooks)
    except RlopsError as error:
        raise _fail(error) from None
    try:
        yield registry
    except RlopsError as error:
        raise _fail(error) from None
    finally:
        registry.close()


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _emit(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def _print(table: Any) -> None:
    from rich.console import Console

    Console(width=160).print(table)


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


@registry_app.command("register")
def register(
    source: Annotated[Path, typer.Argument(help="An artifact directory (manifest + weights).")],
    by: ByOption = None,
    root: RootOption = DEFAULT_ROOT,
    index: IndexOption = None,
    as_json: JsonOption = False,
) -> None:
    """Copy a verified artifact into the registry (a no-op if its version is there)."""
    with opened(root, index) as registry:
        record = registry.register(source, actor=by)
    if as_json:
        _emit(record.to_json())
    else:
        typer.echo(f"registered {record.name} {record.version} -> {root / record.path}")


@registry_app.command("list")
def list_versions(
    name: Annotated[str | None, typer.Argument(help="Only this policy.")] = None,
    root: RootOption = DEFAULT_ROOT,
    index: IndexOption = None,
    as_json: JsonOption = False,
) -> None:
    """Registered versions, with the aliases pointing at each and its gate verdict."""
    with opened(root, index) as registry:
        versions = registry.versions(name)
        aliases = registry.aliases(name)
        gates = {(v.name, v.version): registry.gate(v.name, v.version) for v in versions}
    rows = []
    for v in versions:
        here = sorted(a.alias for a in aliases if (a.name, a.version) == (v.name, v.version))
        gate = gates[(v.name, v.version)]
        verdict = "none" if gate is None else ("passed" if gate.passed else "failed")
        rows.append((v, here, verdict))
    if as_json:
        _emit([v.to_json() | {"aliases": here, "gate": verdict} for v, here, verdict in rows])
        return
    columns = ["name", "version", "family", "aliases", "gate", "registered", "by"]
    cells = [
        [v.name, v.version, v.family, ",".join(h), g, _when(v.registered_at), v.registered_by]
        for v, h, g in rows
    ]
    _print(_table(f"policy versions in {root}", columns, cells))


@registry_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Policy name.")],
    ref: Annotated[str, typer.Argument(help="A version or an alias.")],
    root: RootOption = DEFAULT_ROOT,
    index: IndexOption = None,
    as_json: JsonOption = False,
) -> None:
    """One version: its manifest (checked against its registered sha256), aliases and gate."""
    with opened(root, index) as registry:
        record = registry.resolve(name, ref)
        manifest = registry.manifest(name, record.version)
        here = [a.alias for a in registry.aliases(name) if a.version == record.version]
        gate = registry.gate(name, record.version)
    if as_json:
        _emit(
            {
                "version": record.to_json(),
                "manifest": manifest.to_json(),
                "aliases": here,
                "gate": gate.to_json() if gate is not None else None,
            }
        )
        return
    rows = [
        ["version", record.version],
        ["family", manifest.family],
        ["aliases", ",".join(here) or "-"],
        ["parent", manifest.parent_version or "-"],
        ["created", f"{_when(manifest.created_at)} by {manifest.created_by}"],
        ["registered", f"{_when(record.registered_at)} by {record.registered_by}"],
        ["features", f"{manifest.feature_schema.dim} columns ({manifest.feature_schema.version})"],
        ["actions", f"{','.join(manifest.action_catalog.ids)} ({manifest.action_catalog.version})"],
        ["reward spec", manifest.reward_spec_hash or "-"],
        ["snapshot", manifest.snapshot_id or "-"],
        ["training config", json.dumps(manifest.training_config, sort_keys=True)],
        ["evaluation", json.dumps(manifest.evaluation, sort_keys=True)],
        ["manifest sha256", record.manifest_sha256],
        ["library", manifest.library_version],
    ]
    if gate is None:
        rows.append(["gate", "none"])
    else:
        verdict = "PASSED" if gate.passed else "FAILED: " + "; ".join(gate.failures())
        rows.append(["gate", f"{verdict} (against {gate.against_version or 'logging'})"])
    _print(_table(f"{name} {record.version}", ["field", "value"], rows))


@registry_app.command("diff")
def diff(
    name: Annotated[str, typer.Argument(help="Policy name.")],
    before: Annotated[str, typer.Argument(help="A version or alias (e.g. production).")],
    after: Annotated[str, typer.Argument(help="A version or alias (e.g. candidate).")],
    root: RootOption = DEFAULT_ROOT,
    index: IndexOption = None,
    as_json: JsonOption = False,
) -> None:
    """Manifest fields that differ between two versions."""
    from rlops.registry.diff import diff_manifests

    with opened(root, index) as registry:
        a, b = registry.resolve(name, before), registry.resolve(name, after)
        changes = diff_manifests(
            registry.manifest(name, a.version), registry.manifest(name, b.version)
        )
    if as_json:
        _emit([c.to_json() for c in changes])
        return
    _print(
        _table(
            f"{name}: {a.version} -> {b.version}",
            ["field", a.version, b.version],
            [[c.field, json.dumps(c.before), json.dumps(c.after)] for c in changes],
        )
    )


@registry_app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="Policy name.")],
    version: Annotated[str, typer.Argument(help="The version to point the alias at.")],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "production",
    reason: Annotated[str, typer.Option(help="Why (required with --force).")] = "",
    force: Annotated[bool, typer.Option(help="Skip the gate (needs --reason).")] = False,
    by: ByOption = None,
    expect_revision: RevisionOption = None,
    root: RootOption = DEFAULT_ROOT,
    index: IndexOption = None,
    redis: RedisOption = None,
    as_json: JsonOption = False,
) -> None:
    """Point an alias at a version (production needs a passing gate, or --force)."""
    with opened(root, index, redis) as registry:
        record = registry.promote(
            name,
            version,
            alias=alias,
            actor=by,
            reason=reason,
            force=force,
            expected_revision=expect_revision,
        )
    if as_json:
        _emit(record.to_json())
    else:
        typer.echo(f"{name} {alias} -> {record.version} (revision {record.revision})")


@registry_app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="Policy name.")],
    alias: Annotated[str, typer.Option(help="Alias to move back.")] = "production",
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    by: ByOption = None,
    expect_revision: RevisionOption = None,
    root: RootOption = DEFAULT_ROOT,
    index: IndexOption = None,
    redis: RedisOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move an alias back to the version it held before the current one."""
    with opened(root, index, redis) as registry:
        record = registry.rollback(
            name, alias=alias, actor=by, reason=reason, expected_revision=expect_revision
        )
    if as_json:
        _emit(record.to_json())
    else:
        typer.echo(f"{name} {alias} rolled back to {record.version} (revision {record.revision})")


@registry_app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="Policy name.")],
    alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
    root: RootOption = DEFAULT_ROOT,
    index: IndexOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every move of the policy's aliases: who, when, from, to, why, forced."""
    with opened(root, index) as registry:
        events = registry.history(name, alias)
    if as_json:
        _emit([e.to_json() for e in events])
        return
    _print(
        _table(
            f"{name} alias history",
            ["when", "alias", "rev", "kind", "from", "to", "by", "forced", "reason"],
            [
                [
                    _when(e.at),
                    e.alias,
                    str(e.revision),
                    e.kind,
                    e.from_version or "-",
                    e.to_version,
                    e.actor,
                    "FORCED" if e.forced else "",
                    e.reason,
                ]
                for e in events
            ],
        )
    )
