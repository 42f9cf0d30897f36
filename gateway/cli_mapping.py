"""CLI commands for administrators' mapping work: explain, preview, test, field catalog.

Registered on the main ``xoev-gateway`` app by ``gateway.cli`` (``config explain``,
``config test``, ``config schema``, ``mapping preview``, ``schema fields``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.cli import ConfigDir, SchemaDirs, _settings, app, config_app, fail
from gateway.errors import GatewayError
from gateway.routing.yaml_lines import lines_of

if TYPE_CHECKING:
    from gateway.intake.registry import SchemaRegistry
    from gateway.intake.routing_keys import MunicipalityDirectory
    from gateway.routing.config import GatewayConfig
    from gateway.settings import Settings

mapping_app = typer.Typer(help="Preview what a message becomes for a municipality.")
schema_app = typer.Typer(help="What the message types contain.", no_args_is_help=True)
app.add_typer(mapping_app, name="mapping")
app.add_typer(schema_app, name="schema")

Municipality = Annotated[
    str, typer.Option("--municipality", "-m", help="AGS (8 digits) or ARS (12 digits).")
]


def _load(settings: Settings) -> tuple[GatewayConfig, SchemaRegistry, MunicipalityDirectory]:
    """Configuration, schema registry and municipality list, as a running gateway has them."""
    from gateway.intake.registry import SchemaRegistry
    from gateway.intake.routing_keys import MunicipalityDirectory
    from gateway.routing.config import load_config

    return (
        load_config(settings.config_source),
        SchemaRegistry.load(settings.all_schema_dirs),
        MunicipalityDirectory.load(settings.municipality_list),
    )


@config_app.command("explain")
def config_explain(
    municipality: Municipality,
    service: Annotated[str, typer.Option("--service", "-s", help="Message type.")],
    config: ConfigDir = None,
) -> None:
    """Show the effective route and mapping, and where each field comes from."""
    from gateway.intake.routing_keys import MunicipalityDirectory
    from gateway.mapping.preview import normalize_municipality
    from gateway.routing.config import load_config

    settings = _settings(config)
    try:
        cfg = load_config(settings.config_source)
        directory = MunicipalityDirectory.load(settings.municipality_list)
        ags = normalize_municipality(municipality, directory)
    except GatewayError as exc:
        raise fail(exc) from None
    typer.echo(
        f"municipality {ags} {directory.names.get(ags, '')}, service {service}, "
        f"config {cfg.version}"
    )
    route = cfg.route_key(ags, (service,))
    if route is None:
        typer.echo("route: none (submissions for it are refused with 'no-route')")
        raise typer.Exit(1)
    level = {0: "default", 2: "Land", 3: "Regierungsbezirk", 5: "Kreis", 8: "municipality"}
    typer.echo(
        f"route: municipality {route[0] or '*'} ({level[len(route[0])]}), service {route[1]}"
        f" -> {', '.join(cfg.routes[route])}  [{cfg.route_sources.get(route, '?')}]"
    )
    lines = _LineCache()
    for destination in cfg.routes[route]:
        dest = cfg.destinations[destination]
        typer.echo(f"\ndestination {destination} (adapter {dest.adapter})")
        mapping = cfg.mappings.effective(ags, service, destination)
        if mapping is None:
            typer.echo("  no mapping: the adapter gets the XML only (payload null)")
            continue
        typer.echo("  layers, least specific first:")
        for origin in mapping.layers:
            typer.echo(f"    {origin.describe(lines.line(origin))}")
        typer.echo(
            f"  format: {mapping.format}"
            + (f" (root {mapping.xml_root})" if mapping.format == "xml" else "")
        )
        width = max(len(name) for name in mapping.origins)
        for name, origin in mapping.origins.items():
            compiled = mapping.fields.get(name)
            what = "removed" if compiled is None else _summary(compiled.spec)
            typer.echo(f"  {name:<{width}}  {what}")
            typer.echo(f"  {'':<{width}}    from {origin.describe(lines.line(origin))}")


class _LineCache:
    def __init__(self) -> None:
        self._texts: dict[Path, str] = {}

    def line(self, origin: object) -> int | None:
        from gateway.mapping.table import Origin

        assert isinstance(origin, Origin)
        text = self._texts.get(origin.path)
        if text is None:
            text = self._texts[origin.path] = origin.path.read_text(encoding="utf-8")
        return lines_of(text, [origin.loc])[0]


def _summary(spec: object) -> str:
    from gateway.mapping.model import FieldSpec

    assert isinstance(spec, FieldSpec)
    kind = spec.kind
    if kind == "const":
        text = f"const {json.dumps(spec.const, ensure_ascii=False)}"
    elif kind == "template":
        text = f"template {spec.template!r}"
    elif kind == "fields":
        text = f"object of {', '.join(spec.fields or {})}"
    elif kind == "items":
        text = f"list of {spec.items}" + (f" ({', '.join(spec.fields)})" if spec.fields else "")
    elif kind == "xslt":
        text = f"xslt {spec.xslt}"
    else:
        text = f"xpath {spec.xpath}"
        if spec.type != "string":
            text += f" as {spec.type}" + (f" {spec.format!r}" if spec.format else "")
    if spec.map is not None:
        text += f", value map ({len(spec.map.values)} codes"
        text += f", default {spec.map.default!r})" if spec.map.has_default else ", else error)"
    if spec.when:
        text += f", when {spec.when}"
    return text


@config_app.command("test")
def config_test(
    config: ConfigDir = None,
    schemas: SchemaDirs = None,
    update: Annotated[
        bool, typer.Option("--update", help="Write the current outputs as expected.")
    ] = False,
) -> None:
    """Run the mapping tests in <config>/mapping-tests; show a diff for each failure."""
    from gateway.mapping.casebook import CASES_DIR, run_cases

    settings = _settings(config, schemas)
    if update and settings.config_dir is None:
        raise typer.BadParameter(
            "needs --config: the shipped example configuration is not written to",
            param_hint="--update",
        )
    try:
        cfg, registry, directory = _load(settings)
    except GatewayError as exc:
        raise fail(exc) from None
    results = run_cases(settings.config_source, registry, directory, cfg, update=update)
    if not results:
        typer.echo(f"no mapping tests in {settings.config_source / CASES_DIR}")
        return
    failed = [r for r in results if not r.ok]
    for r in results:
        status = "ok  " if r.ok else "FAIL"
        typer.echo(f"{status} {r.case.name} -> {r.destination or '-'}: {r.message}")
        if r.diff:
            typer.echo(r.diff.rstrip("\n"))
    typer.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


@config_app.command("schema")
def config_schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Write the JSON Schema of the configuration files (for editors)."""
    from gateway.routing.config import config_json_schema

    text = json.dumps(config_json_schema(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


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
    from gateway.mapping.preview import preview

    settings = _settings(config, schemas)
    try:
        cfg, registry, directory = _load(settings)
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


@schema_app.command("fields")
def schema_fields(
    message_type: Annotated[
        str, typer.Argument(help="Message type, e.g. hundesteuer.anmeldung.0101")
    ],
    schemas: SchemaDirs = None,
    max_depth: Annotated[int, typer.Option(help="Stop at this nesting depth.")] = 30,
) -> None:
    """List every XPath of a message type with type, cardinality and code list."""
    from gateway.intake.field_catalog import field_catalog

    settings = _settings(None, schemas)
    try:
        catalog = field_catalog(message_type, settings.all_schema_dirs, max_depth)
    except GatewayError as exc:
        raise fail(exc) from None
    used = {p.split(":")[0] for f in catalog.fields for p in f.xpath.split("/") if ":" in p}
    typer.echo("# namespaces (copy the ones you use into the config's 'namespaces'):")
    for prefix, uri in catalog.namespaces.items():
        if prefix in used:
            typer.echo(f"#   {prefix}: {uri}")
    typer.echo("# xpath\ttype\tcardinality\tcode list")
    for f in catalog.fields:
        typer.echo(f"{f.xpath}\t{f.type}\t{f.cardinality}\t{f.codelist or ''}")
