"""``xoev-gateway schema``: what the message types contain."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli._common import SchemaDirs, echo_header, fail, settings_for
from gateway.errors import GatewayError

schema_app = typer.Typer(help="What the message types contain.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(schema_app, name="schema")


@schema_app.command("fields")
def schema_fields(
    message_type: Annotated[
        str, typer.Argument(help="Message type, e.g. hundesteuer.anmeldung.0101")
    ],
    schemas: SchemaDirs = None,
    max_depth: Annotated[int, typer.Option(help="Stop at this nesting depth.")] = 30,
) -> None:
    """List every XPath of a message type with type, cardinality and code list, and how
    its schema set's header is read (recipient, identity, type, author, time)."""
    from gateway.intake.field_catalog import field_catalog
    from gateway.intake.registry import header_reader, read_catalogs

    settings = settings_for(None, schemas)
    try:
        catalog = field_catalog(message_type, settings.all_schema_dirs, max_depth)
        entries, _urls = read_catalogs(settings.all_schema_dirs)
        headers = [
            (entry.id, header_reader(entry))
            for _directory, entry in entries
            if message_type in entry.messages or not entry.messages
        ]
    except GatewayError as exc:
        raise fail(exc) from None
    for schema_set, reader in headers:
        typer.echo(f"# header of schema set {schema_set} ({reader.name}):")
        echo_header(reader.describe(), indent="#   ")
    used = {p.split(":")[0] for f in catalog.fields for p in f.xpath.split("/") if ":" in p}
    typer.echo("# namespaces (copy the ones you use into the config's 'namespaces'):")
    for prefix, uri in catalog.namespaces.items():
        if prefix in used:
            typer.echo(f"#   {prefix}: {uri}")
    typer.echo("# xpath\ttype\tcardinality\tcode list")
    for f in catalog.fields:
        typer.echo(f"{f.xpath}\t{f.type}\t{f.cardinality}\t{f.codelist or ''}")
