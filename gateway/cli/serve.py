"""The long-running processes: ``serve`` (API + worker), ``api``, ``worker``, ``relay``."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn

from gateway.cli._common import ConfigDir, fail, run_async, settings_for
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


Demo = Annotated[
    bool,
    typer.Option(
        "--demo", help="Accept the public demo tokens of the example configuration (demo mode)."
    ),
]


def serve(
    config: ConfigDir = None, host: Host = None, port: Port = None, demo: Demo = False
) -> None:
    """Run the API and a worker in one process (the embedded default)."""
    _run_server(config, host, port, run_worker=True, demo=demo)


def api(config: ConfigDir = None, host: Host = None, port: Port = None, demo: Demo = False) -> None:
    """Run only the API (scale it out; run workers separately)."""
    _run_server(config, host, port, run_worker=False, demo=demo)


def worker(config: ConfigDir = None) -> None:
    """Run only a worker: deliver queued work items until SIGTERM/SIGINT (graceful)."""
    _run_until_signal(config, run_worker=True, run_relay=False, name="worker")


def relay(config: ConfigDir = None) -> None:
    """Run only the outbox relay (scaled mode, when the api processes do not run it)."""
    _run_until_signal(config, run_worker=False, run_relay=True, name="relay")


def _run_server(
    config: Path | None, host: str | None, port: int | None, *, run_worker: bool, demo: bool
) -> None:
    from gateway.api.app import create_app

    settings = settings_for(config)
    settings.host = host or settings.host
    settings.port = port or settings.port
    settings.demo = settings.demo or demo
    app = create_app(settings, run_worker=run_worker, on_loaded=freeze_startup_heap)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, **UVICORN_OPTIONS)
    except GatewayError as exc:
        raise fail(exc) from None
    except SystemExit:
        startup_error = getattr(app.state, "startup_error", None)
        if isinstance(startup_error, GatewayError):
            raise fail(startup_error) from None
        raise


def _run_until_signal(config: Path | None, *, run_worker: bool, run_relay: bool, name: str) -> None:
    from gateway.runtime import Runtime

    async def main() -> None:
        runtime = await Runtime.start(
            settings_for(config),
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
    if not runtime.reload_or_keep():  # logged and audited there
        typer.echo("config reload refused, previous config stays active", err=True)
