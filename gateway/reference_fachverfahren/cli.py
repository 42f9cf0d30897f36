"""``xoev-gateway reference-fachverfahren``: run the reference Fachverfahren as a server."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated

import typer
import uvicorn


def register(app: typer.Typer) -> None:
    app.command("reference-fachverfahren")(reference_fachverfahren)


def reference_fachverfahren(
    port: Annotated[int, typer.Option(help="Port.")] = 8090,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    config: Annotated[
        Path | None, typer.Option(help="JSON file with a ReferenceConfig (auth, state file).")
    ] = None,
    state_file: Annotated[
        Path | None, typer.Option(help="Keep the cases in this JSON file.")
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Serve HTTPS with this cert.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Key of --tls-cert.")] = None,
    client_ca: Annotated[
        Path | None, typer.Option(help="Require client certificates issued by this CA (mTLS).")
    ] = None,
) -> None:
    """Run the reference Fachverfahren (REST /cases, SOAP /soap) for tests and demos."""
    from gateway.reference_fachverfahren.app import ReferenceConfig, create_app

    cfg = (
        ReferenceConfig.model_validate_json(config.read_text(encoding="utf-8"))
        if config is not None
        else ReferenceConfig()
    )
    if state_file is not None:
        cfg = cfg.model_copy(update={"state_file": state_file})
    typer.echo(f"reference Fachverfahren on {host}:{port}", err=True)
    uvicorn.run(
        create_app(cfg),
        host=host,
        port=port,
        log_level="warning",
        # Fault tests leave "slow" requests hanging; do not let them hold up a shutdown.
        timeout_graceful_shutdown=1,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        ssl_ca_certs=str(client_ca) if client_ca else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
    )
