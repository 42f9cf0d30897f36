"""The long-running processes: ``serve`` (API + worker), ``api``, ``worker``, ``relay``."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn

from gateway.cli._common import ConfigDir, SchemaDirs, fail, run_async, settings_for
from gateway.errors import GatewayError
from gateway.process import freeze_startup_heap

if TYPE_CHECKING:
    from gateway.runtime import Runtime

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


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(api)
    app.command()(worker)
    app.command()(relay)


def serve(
    config: ConfigDir = None, host: Host = None, port: Port = None, schemas: SchemaDirs = None
) -> None:
    """Run the API and a worker in one process (the embedded default)."""
    _run_server(config, host, port, run_worker=True, schemas=schemas)


def api(
    config: ConfigDir = None, host: Host = None, port: Port = None, schemas: SchemaDirs = None
) -> None:
    """Run only the API (scale it out; run workers separately)."""
    _run_server(config, host, port, run_worker=False, schemas=schemas)


def worker(config: ConfigDir = None, schemas: SchemaDirs = None) -> None:
    """Run only a worker: deliver queued work items until SIGTERM/SIGINT (graceful)."""
    _run_until_signal(config, run_worker=True, run_relay=False, name="worker", schemas=schemas)


def relay(config: ConfigDir = None) -> None:
    """Run only the outbox relay (scaled mode, when the api processes do not run it)."""
    _run_until_signal(config, run_worker=False, run_relay=True, name="relay")


def _run_server(
    config: Path | None,
    host: str | None,
    port: int | None,
    *,
    run_worker: bool,
    schemas: list[Path] | None = None,
) -> None:
    from gateway.api.app import create_app

    settings = settings_for(config, schemas)
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


def _run_until_signal(
    config: Path | None,
    *,
    run_worker: bool,
    run_relay: bool,
    name: str,
    schemas: list[Path] | None = None,
) -> None:
    from gateway.runtime import Runtime

    async def main() -> None:
        runtime = await Runtime.start(
            settings_for(config, schemas),
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

    run_async(main)


def _reload(runtime: Runtime) -> None:
    try:
        runtime.reload_config()
    except GatewayError as exc:
        typer.echo(f"config reload refused, previous config stays active: {exc.detail}", err=True)
