"""``xoev-gateway codelists``: import XRepository code lists into the configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.cli._common import ConfigDir, fail, settings_for
from gateway.errors import GatewayError

codelists_app = typer.Typer(help="Import and list code lists (genericode).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(codelists_app, name="codelists")


@codelists_app.command("import")
def codelists_import(
    file: Annotated[Path, typer.Argument(help="A genericode file (XRepository).")],
    config: ConfigDir = None,
    force: Annotated[
        bool, typer.Option("--force", help="Import even if the configuration refuses it.")
    ] = False,
) -> None:
    """Check a genericode file and make it the active version of its list in
    <config>/codelists/ (earlier versions stay in codelists/versions/); reload to use it."""
    from gateway.admin.codelists import import_codelist

    settings = settings_for(config)
    if settings.config_dir is None:
        typer.echo("error: give the configuration to import into (--config DIR)", err=True)
        raise typer.Exit(2)
    try:
        done = import_codelist(file, settings.config_dir, force=force)
    except GatewayError as exc:
        raise fail(exc) from None
    replaced = f"replaces {done.previous}" if done.previous else "new list"
    typer.echo(
        f"imported {done.version_uri} ({done.codes} codes; {replaced}) as {done.active}; "
        f"kept as {done.archived}"
    )
    if done.problem:
        typer.echo(f"warning: the configuration refuses it until fixed: {done.problem}", err=True)
    typer.echo("reload the gateway (SIGHUP or POST /v1/admin/config/reload) to use it")


@codelists_app.command("list")
def codelists_list(config: ConfigDir = None) -> None:
    """The code lists in effect: shipped, then imported (these win), with version and size."""
    from gateway.mapping.codelists import read_genericode
    from gateway.settings import SHIPPED_SCHEMAS

    settings = settings_for(config)
    for directory in (SHIPPED_SCHEMAS / "codelists", settings.config_source / "codelists"):
        for path in sorted(directory.glob("*.xml")) if directory.is_dir() else []:
            try:
                listed = read_genericode(path)
            except GatewayError as exc:
                raise fail(exc) from None
            typer.echo(f"{listed.version_uri or listed.uri}\t{len(listed.codes)} codes\t{path}")
