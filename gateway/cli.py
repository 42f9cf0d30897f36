"""The ``xoev-gateway`` command."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from gateway.errors import GatewayError, InvalidMessage
from gateway.reference_fachverfahren.cli import reference_fachverfahren
from gateway.settings import Settings

app = typer.Typer(
    help="xoev-gateway: XÖV submissions into each municipality's Fachverfahren.",
    no_args_is_help=True,
)
config_app = typer.Typer(help="Check and explain the routing configuration.", no_args_is_help=True)
dead_app = typer.Typer(help="List and replay dead deliveries.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(dead_app, name="dead-letters")
app.command("reference-fachverfahren")(reference_fachverfahren)

ConfigDir = Annotated[
    Path | None, typer.Option("--config", "-c", help="Configuration directory (*.yaml).")
]
SchemaDirs = Annotated[
    list[Path] | None, typer.Option("--schemas", help="Extra schema catalog directory.")
]


def fail(exc: GatewayError) -> typer.Exit:
    typer.echo(f"error: {exc.detail}", err=True)
    return typer.Exit(exc.exit_code)


def _settings(config: Path | None = None, schemas: list[Path] | None = None) -> Settings:
    settings = Settings()
    if config is not None:
        settings.config_dir = config
    if schemas:
        settings.schema_dirs = [*settings.schema_dirs, *schemas]
    return settings


UVICORN_OPTIONS: dict[str, Any] = {
    # uvloop and httptools (uvicorn[standard]); named so that a missing one fails loudly
    # instead of silently falling back to the slower asyncio loop and h11 parser.
    "loop": "uvloop",
    "http": "httptools",
    "log_level": "info",
    "access_log": False,
}
"""The server settings; the benchmark's bare reference endpoint runs with the same."""


Host = Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")]
Port = Annotated[int | None, typer.Option(help="Port (default 8080).")]


def _run_server(
    config: Path | None, host: str | None, port: int | None, *, run_worker: bool
) -> None:
    from gateway.api.app import create_app
    from gateway.process import freeze_startup_heap

    settings = _settings(config)
    settings.host = host or settings.host
    settings.port = port or settings.port
    try:
        uvicorn.run(
            create_app(settings, run_worker=run_worker, on_loaded=freeze_startup_heap),
            host=settings.host,
            port=settings.port,
            **UVICORN_OPTIONS,
        )
    except GatewayError as exc:
        raise fail(exc) from None


@app.command()
def serve(config: ConfigDir = None, host: Host = None, port: Port = None) -> None:
    """Run the API and a worker in one process (the embedded default)."""
    _run_server(config, host, port, run_worker=True)


@app.command()
def api(config: ConfigDir = None, host: Host = None, port: Port = None) -> None:
    """Run only the API (scale it out; run workers separately)."""
    _run_server(config, host, port, run_worker=False)


def _run_until_signal(config: Path | None, *, run_worker: bool, run_relay: bool, name: str) -> None:
    from gateway.process import freeze_startup_heap
    from gateway.runtime import Runtime

    async def main() -> None:
        runtime = await Runtime.start(
            _settings(config),
            run_worker=run_worker,
            run_relay=run_relay,
            on_loaded=freeze_startup_heap,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: _reload(runtime))
        typer.echo(f"{name} running", err=True)
        await stop.wait()
        typer.echo(f"{name} stopping: finishing in-flight work", err=True)
        await runtime.stop()

    try:
        asyncio.run(main())
    except GatewayError as exc:
        raise fail(exc) from None


@app.command()
def worker(config: ConfigDir = None) -> None:
    """Run only a worker: deliver queued work items until SIGTERM/SIGINT (graceful)."""
    _run_until_signal(config, run_worker=True, run_relay=False, name="worker")


@app.command()
def relay(config: ConfigDir = None) -> None:
    """Run only the outbox relay (scaled mode, when the api processes do not run it)."""
    _run_until_signal(config, run_worker=False, run_relay=True, name="relay")


def _reload(runtime: object) -> None:
    from gateway.runtime import Runtime

    assert isinstance(runtime, Runtime)
    try:
        runtime.reload_config()
    except GatewayError as exc:
        typer.echo(f"config reload refused, previous config stays active: {exc.detail}", err=True)


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="XML files to check.")],
    config: ConfigDir = None,
    schemas: SchemaDirs = None,
) -> None:
    """Check messages offline, exactly as the API would (parse, schema, routing keys)."""
    from gateway.intake.pipeline import check
    from gateway.intake.registry import SchemaRegistry
    from gateway.intake.routing_keys import MunicipalityDirectory, RecipientResolver

    settings = _settings(config, schemas)
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
        typer.echo(
            f"{path}: valid {checked.schema_set.id} {keys.message_type} "
            f"uuid={keys.message_uuid} recipient={keys.municipality}"
        )
    if failed:
        raise typer.Exit(2)


@config_app.command("check")
def config_check(config: ConfigDir = None) -> None:
    """Load the configuration and report the first problem with file, line and key."""
    from gateway.routing.config import load_config

    settings = _settings(config)
    try:
        cfg = load_config(settings.config_source)
    except GatewayError as exc:
        raise fail(exc) from None
    typer.echo(
        f"{settings.config_source}: ok (version {cfg.version}): {len(cfg.sender_names)} senders, "
        f"{len(cfg.destinations)} destinations, {len(cfg.routes)} routes"
    )


@dead_app.command("list")
def dead_list(config: ConfigDir = None) -> None:
    """List dead deliveries with their reason."""
    from gateway.runtime import Runtime

    async def main() -> None:
        runtime = await Runtime.start(_settings(config), run_worker=False)
        try:
            for d in await runtime.broker.dead_letters():
                typer.echo(f"{d.item.delivery_id}\t{d.item.destination}\t{d.attempts}\t{d.reason}")
        finally:
            await runtime.stop()

    try:
        asyncio.run(main())
    except GatewayError as exc:
        raise fail(exc) from None


@dead_app.command("replay")
def dead_replay(
    delivery_ids: Annotated[
        list[str] | None, typer.Argument(help="Deliveries; all if none.")
    ] = None,
    config: ConfigDir = None,
) -> None:
    """Make dead deliveries ready again (after the cause is fixed)."""
    from gateway.runtime import Runtime, replay_dead

    async def main() -> None:
        runtime = await Runtime.start(_settings(config), run_worker=False)
        try:
            replayed = await replay_dead(runtime, delivery_ids or None)
            typer.echo(f"replayed {len(replayed)} deliveries")
        finally:
            await runtime.stop()

    try:
        asyncio.run(main())
    except GatewayError as exc:
        raise fail(exc) from None


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its data and output.")] = Path(
        "demo-output"
    ),
) -> None:
    """Start the gateway on the embedded default, send the samples, show what happened."""
    from gateway.demo import run_demo

    try:
        code = run_demo(workdir)
    except GatewayError as exc:
        raise fail(exc) from None
    raise typer.Exit(code)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


# Mapping commands live in their own module; importing it registers them on ``app``.
from gateway import cli_mapping  # noqa: E402, F401
