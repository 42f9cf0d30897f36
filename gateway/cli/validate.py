"""``xoev-gateway validate``: check messages offline, exactly as the API would."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.cli._common import ConfigDir, SchemaDirs, fail, settings_for
from gateway.errors import GatewayError, InvalidMessage


def register(app: typer.Typer) -> None:
    app.command()(validate)


def validate(
    files: Annotated[list[Path], typer.Argument(help="XML files to check.")],
    config: ConfigDir = None,
    schemas: SchemaDirs = None,
) -> None:
    """Check messages offline, exactly as the API would (parse, schema, routing keys)."""
    from gateway.intake.pipeline import check
    from gateway.intake.registry import SchemaRegistry
    from gateway.municipality import MunicipalityDirectory, RecipientResolver

    settings = settings_for(config, schemas)
    try:
        registry = SchemaRegistry.load(settings.all_schema_dirs)
        directory = MunicipalityDirectory.load(settings.municipality_list)
    except GatewayError as exc:
        raise fail(exc) from None
    aliases: dict[str, str] = {}
    if settings.config_source.is_dir():
        from gateway.routing.config import load_config

        try:
            aliases = load_config(settings.config_source).recipients
        except GatewayError:
            aliases = {}
    resolver = RecipientResolver(directory, aliases)
    failed = 0
    for path in files:
        try:
            checked = check(path.read_bytes(), registry, resolver)
        except OSError as exc:
            failed += 1
            typer.echo(f"{path}: error: cannot read: {exc.strerror}")
            continue
        except InvalidMessage as exc:
            failed += 1
            typer.echo(f"{path}: invalid: {exc.detail}")
            for err in exc.errors:
                typer.echo(f"{path}:{err.line}: {err.path}: {err.message}")
            continue
        except GatewayError as exc:
            failed += 1
            typer.echo(f"{path}: {exc.slug}: {exc.detail}")
            continue
        keys = checked.keys
        header = keys.header
        typer.echo(
            f"{path}: valid {checked.schema_set.id} {keys.message_type} "
            f"uuid={keys.message_uuid} recipient={keys.municipality or '-'}"
        )
        # The routing keys as read, so that an administrator sees what the header gave.
        recipient = (
            f"{keys.recipient} -> {keys.municipality}"
            if keys.recipient
            else f"none ({header.recipient_missing}); the transport or the sender's "
            "default_recipient must give one"
        )
        identity = " + ".join(header.identity) or header.message_uuid
        scope = "per sender" if header.per_sender else "gateway-wide"
        typer.echo(f"  header ({checked.schema_set.header.name}):")
        typer.echo(f"    recipient: {recipient}")
        typer.echo(f"    identity: {identity} ({scope})")
        typer.echo(f"    message_type: {keys.message_type}")
        typer.echo(f"    author: {keys.author or '-'}")
        if header.created:
            typer.echo(f"    created: {header.created}")
        if header.files is not None:
            typer.echo(f"    files: {', '.join(header.files) or '-'}")
    if failed:
        raise typer.Exit(2)
