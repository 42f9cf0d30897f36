"""``xoev-gateway demo``: the README's main job, on the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.cli._common import fail
from gateway.errors import GatewayError


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its data and output.")] = Path(
        "demo-output"
    ),
    port: Annotated[
        int | None, typer.Option(help="Port the demo gateway listens on (default: a free one).")
    ] = None,
) -> None:
    """Start the gateway on the embedded default, send the samples, show what happened."""
    from gateway.demo import run_demo

    try:
        code = run_demo(workdir, port)
    except GatewayError as exc:
        raise fail(exc) from None
    raise typer.Exit(code)
