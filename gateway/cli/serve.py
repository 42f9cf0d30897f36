"""The long-running processes: ``serve`` (API + worker), ``api``, ``worker``, ``relay``."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn

from gateway.cli._common import ConfigDir, SchemaDirs, fail, run_async, settings_for
from gateway.errors import ConfigError, GatewayError
from gateway.process import freeze_startup_heap
from gateway.telemetry import logs

if TYPE_CHECKING:
    from gateway.settings import Settings

UVICORN_OPTIONS: dict[str, Any] = {
    # uvloop and httptools (uvicorn[standard]); named so that a missing one fails loudly
    # instead of silently falling back to the slower asyncio loop and h11 parser.
    "loop": "uvloop",
    "http": "httptools",
    "log_level": "info",
    "access_log": False,
    # Our handler formats uvicorn's lines too (gateway.telemetry.logs.configure).
    "log_config": None,
}
"""The server settings; the benchmark's bare reference endpoint runs with the same."""

log = logging.getLogger("xoev_gateway")


def configure_telemetry(settings: Settings, process: str) -> None:
    """Once per process, before anything logs: level, format, traces (docs/operations.md)."""
    logs.configure(settings.log_level, settings.log_format)
    if settings.otlp_endpoint:
        from gateway.telemetry import traces

        try:
            traces.configure(f"xoev-gateway-{process}", settings.otlp_endpoint)
        except traces.TracingUnavailable as exc:
            raise fail(ConfigError(str(exc))) from None


Host = Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")]
Port = Annotated[int | None, typer.Option(help="Port (default 8080).")]
TlsCert = Annotated[
    Path | None, typer.Option("--tls-cert", help="Serve HTTPS: certificate (PEM, with chain).")
]
TlsKey = Annotated[Path | None, typer.Option("--tls-key", help="Private key of --tls-cert.")]
TlsClientCa = Annotated[
    Path | None,
    typer.Option("--tls-client-ca", help="Require client certificates from this CA (mTLS)."),
]
Sources = Annotated[
    bool | None,
    typer.Option(
        "--sources/--no-sources",
        help="Poll the inbound sources (FIT-Connect) in this process "
        "(default: XOEV_GATEWAY_SOURCES, true).",
    ),
]


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
    config: ConfigDir = None,
    host: Host = None,
    port: Port = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_client_ca: TlsClientCa = None,
    sources: Sources = None,
    schemas: SchemaDirs = None,
    demo: Demo = False,
) -> None:
    """Run the API, the inbound sources and a worker in one process (the embedded default)."""
    _run_server(
        config,
        host,
        port,
        (tls_cert, tls_key, tls_client_ca),
        sources,
        run_worker=True,
        schemas=schemas,
        demo=demo,
    )


def api(
    config: ConfigDir = None,
    host: Host = None,
    port: Port = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_client_ca: TlsClientCa = None,
    sources: Sources = None,
    schemas: SchemaDirs = None,
    demo: Demo = False,
) -> None:
    """Run only the API and the inbound sources (scale it out; run workers separately)."""
    _run_server(
        config,
        host,
        port,
        (tls_cert, tls_key, tls_client_ca),
        sources,
        run_worker=False,
        schemas=schemas,
        demo=demo,
    )


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
    tls: tuple[Path | None, Path | None, Path | None],
    sources: bool | None,
    *,
    run_worker: bool,
    schemas: list[Path] | None = None,
    demo: bool = False,
) -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from gateway.api.app import create_app
    from gateway.api.connections import ConnectionLimits, guarded_protocol

    settings = settings_for(config, schemas)
    configure_telemetry(settings, "serve" if run_worker else "api")
    settings.host = host or settings.host
    settings.port = port or settings.port
    settings.demo = settings.demo or demo
    limits = ConnectionLimits(
        header_timeout=settings.header_timeout,
        max_header_bytes=settings.max_header_bytes,
        body_timeout=settings.body_timeout,
        body_min_rate=settings.body_min_rate,
        max_connections=settings.max_connections,
    )
    settings.tls_certfile = tls[0] or settings.tls_certfile
    settings.tls_keyfile = tls[1] or settings.tls_keyfile
    settings.tls_client_ca = tls[2] or settings.tls_client_ca
    settings.sources = settings.sources if sources is None else sources
    options = {**UVICORN_OPTIONS, **transport_options(settings)}
    base = options["http"]
    # httptools with read timeouts and a connection cap (slow clients), on top of the
    # TLS protocol when TLS is on.
    protocol = base if isinstance(base, type) else HttpToolsProtocol
    options["http"] = guarded_protocol(limits, protocol)
    options["timeout_keep_alive"] = settings.keep_alive_timeout
    options["access_log"] = settings.access_log
    options["log_level"] = settings.log_level.lower()
    app = create_app(settings, run_worker=run_worker, on_loaded=freeze_startup_heap)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, **options)
    except GatewayError as exc:
        raise fail(exc) from None
    except SystemExit:
        startup_error = getattr(app.state, "startup_error", None)
        if isinstance(startup_error, GatewayError):
            raise fail(startup_error) from None
        raise
    finally:
        from gateway.telemetry import traces

        traces.shutdown()


def transport_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS and proxy options from the settings (docs/security.md)."""
    options: dict[str, Any] = {}
    if settings.forwarded_allow_ips:
        options["proxy_headers"] = True
        options["forwarded_allow_ips"] = settings.forwarded_allow_ips
    else:
        # Without a trusted proxy, X-Forwarded-* are anyone's to forge: ignore them.
        options["proxy_headers"] = False
    if settings.tls_certfile is None:
        if settings.tls_keyfile is not None or settings.tls_client_ca is not None:
            raise ConfigError("TLS needs a certificate: set --tls-cert (XOEV_GATEWAY_TLS_CERTFILE)")
        return options
    from gateway.api.tls import TlsHttpToolsProtocol

    for file in (settings.tls_certfile, settings.tls_keyfile, settings.tls_client_ca):
        if file is not None and not file.is_file():
            raise ConfigError(f"{file}: TLS file not found")
    options.update(
        ssl_certfile=str(settings.tls_certfile),
        ssl_keyfile=str(settings.tls_keyfile) if settings.tls_keyfile else None,
        http=TlsHttpToolsProtocol,
    )
    if settings.tls_client_ca is not None:
        options.update(ssl_ca_certs=str(settings.tls_client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def _run_until_signal(
    config: Path | None,
    *,
    run_worker: bool,
    run_relay: bool,
    name: str,
    schemas: list[Path] | None = None,
) -> None:
    from gateway.runtime import Runtime
    from gateway.telemetry.metrics import serve_metrics

    settings = settings_for(config, schemas)
    configure_telemetry(settings, name)

    async def main() -> None:
        runtime = await Runtime.start(
            settings,
            run_worker=run_worker,
            run_relay=run_relay,
            on_loaded=freeze_startup_heap,
        )
        server = None
        if settings.metrics_port is not None:
            try:
                server = await serve_metrics(
                    settings.metrics_host, settings.metrics_port, runtime.before_scrape
                )
            except OSError as exc:
                await runtime.stop()
                raise ConfigError(
                    f"metrics port {settings.metrics_host}:{settings.metrics_port}: {exc.strerror}"
                ) from None
            log.info(
                "metrics on http://%s:%d/metrics",
                settings.metrics_host,
                settings.metrics_port,
                extra=logs.fields(process=name),
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # A refused config is logged (and audited) by the runtime; the running one stays.
        loop.add_signal_handler(signal.SIGHUP, runtime.reload_or_keep)
        log.info("%s running", name, extra=logs.fields(process=name))
        await stop.wait()
        log.info("%s stopping: finishing in-flight work", name, extra=logs.fields(process=name))
        if server is not None:
            server.close()
        await runtime.stop()

    try:
        run_async(main)
    finally:
        from gateway.telemetry import traces

        traces.shutdown()
