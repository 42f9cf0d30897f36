"""``xoev-gateway mapping``: what a message becomes for a municipality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli._common import ConfigDir, SchemaDirs, fail, load_all, settings_for
from gateway.errors import GatewayError

mapping_app = typer.Typer(help="Preview what a message becomes for a municipality.")


def register(app: typer.Typer) -> None:
    app.add_typer(mapping_app, name="mapping")


@mapping_app.command("preview")
def mapping_preview(
    file: Annotated[Path, typer.Argument(help="A message (XML).")],
    municipality: Annotated[
        str | None,
        typer.Option("--municipality", "-m", help="AGS/ARS; default: the message's recipient."),
    ] = None,
    config: ConfigDir = None,
    schemas: SchemaDirs = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print exactly what each routed destination's adapter would receive; deliver nothing."""
    from gateway.admin.preview import preview

    settings = settings_for(config, schemas)
    try:
        cfg, registry, directory = load_all(settings)
        shown = preview(file.read_bytes(), registry, directory, cfg, municipality)
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    except GatewayError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(shown.to_json(), indent=2, ensure_ascii=False))
        return
    typer.echo(
        f"municipality {shown.municipality} {shown.municipality_name}, message "
        f"{shown.message_type}, config {shown.config_version}; route "
        f"{shown.route[0] or '*'}/{shown.route[1]} [{shown.route_source}]"
    )
    for d in shown.deliveries:
        if d.payload is None:
            typer.echo(f"\n== {d.destination} (adapter {d.adapter}): no mapping, XML only")
            continue
        typer.echo(f"\n== {d.destination} (adapter {d.adapter}): {d.payload.media_type}")
        typer.echo(d.payload.body.decode().rstrip("\n"))
