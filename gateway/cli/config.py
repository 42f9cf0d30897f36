"""``xoev-gateway config``: check, explain and test the routing configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.cli._common import ConfigDir, SchemaDirs, echo_header, fail, load_all, settings_for
from gateway.errors import ConfigError, GatewayError
from gateway.routing.yaml_lines import lines_of

if TYPE_CHECKING:
    from gateway.mapping.model import FieldSpec
    from gateway.mapping.table import Origin

config_app = typer.Typer(help="Check and explain the routing configuration.", no_args_is_help=True)

Municipality = Annotated[
    str, typer.Option("--municipality", "-m", help="AGS (8 digits) or ARS (12 digits).")
]


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(config: ConfigDir = None, schemas: SchemaDirs = None) -> None:
    """Load the configuration and the schema catalogs, and report problems with file, line
    and key: in the configuration itself, message types or XPaths that no schema set has,
    and mapping tests that no longer match a route; then how each schema set's header is
    read."""
    from gateway.admin.casebook import CASES_DIR, stale_cases
    from gateway.admin.consistency import check
    from gateway.intake.registry import SchemaRegistry, header_reader, read_catalogs
    from gateway.routing.config import load_config

    settings = settings_for(config, schemas)
    fit_connect = ""
    try:
        cfg = load_config(settings.config_source)
        registry = SchemaRegistry.load(settings.all_schema_dirs)
        if (settings.config_source / "fit-connect.yaml").is_file():
            from gateway.sources.fitconnect.settings import load as load_fit_connect

            fit = load_fit_connect(settings.config_source)
            fit_connect = f", {len(fit.destinations) if fit else 0} FIT-Connect destinations"
        entries, _urls = read_catalogs(settings.all_schema_dirs)
        readers = [(entry.id, header_reader(entry)) for _directory, entry in entries]
        problems = check(settings.config_source, registry, settings.all_schema_dirs)
        stale = []
        if not problems and (settings.config_source / CASES_DIR).is_dir():
            # Mapping tests are part of the configuration: one that a route change left
            # behind would fail `config test` while `check` said ok.
            _, registry, directory = load_all(settings)
            stale = stale_cases(settings.config_source, registry, directory, cfg)
    except GatewayError as exc:
        raise fail(exc) from None
    if problems:
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(ConfigError.exit_code)
    for r in stale:
        typer.echo(f"{r.case.parent.name}/{r.case.name} -> {r.destination or '-'}: {r.message}")
    if stale:
        raise fail(
            ConfigError(
                f"{len(stale)} mapping test(s) in {settings.config_source / CASES_DIR} no "
                "longer match a route (fix them, or `config test --update`)"
            )
        )
    typer.echo(
        f"{settings.config_source}: ok (version {cfg.version}): {len(cfg.sender_names)} senders, "
        f"{len(cfg.admins)} admins, {len(cfg.destinations)} destinations, "
        f"{len(cfg.routes)} routes{fit_connect}"
    )
    for schema_set, reader in readers:
        typer.echo(f"schema set {schema_set}: header {reader.name}")
        echo_header(reader.describe())
    if cfg.demo_credentials:
        typer.echo(
            f"warning: {', '.join(cfg.demo_credentials)} use a public demo token; serve and "
            "api refuse them outside demo mode: replace them ('xoev-gateway token new')",
            err=True,
        )


@config_app.command("explain")
def config_explain(
    municipality: Municipality,
    service: Annotated[str, typer.Option("--service", "-s", help="Message type.")],
    config: ConfigDir = None,
) -> None:
    """Show the effective route and mapping, and where each field comes from."""
    from gateway.municipality import MunicipalityDirectory, level_of, municipality_list
    from gateway.routing.config import load_config

    settings = settings_for(config)
    try:
        cfg = load_config(settings.config_source)
        directory = MunicipalityDirectory.load(municipality_list(settings))
        ags = directory.normalize(municipality)
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
    typer.echo(
        f"route: municipality {route[0] or '*'} ({level_of(route[0])}), service {route[1]}"
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

    def line(self, origin: Origin) -> int | None:
        text = self._texts.get(origin.path)
        if text is None:
            text = self._texts[origin.path] = origin.path.read_text(encoding="utf-8")
        return lines_of(text, [origin.loc])[0]


def _summary(spec: FieldSpec) -> str:
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
    from gateway.admin.casebook import CASES_DIR, run_cases

    settings = settings_for(config, schemas)
    if update and settings.config_dir is None:
        raise typer.BadParameter(
            "needs --config: the shipped example configuration is not written to",
            param_hint="--update",
        )
    try:
        cfg, registry, directory = load_all(settings)
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
