"""The ``xoev-gateway`` command: one Typer app, one module per command (group).

Each command module has ``register(app)``; adding a command is one module and one line in
``COMMANDS``. Modules import what their commands need inside the command, so that
``xoev-gateway --help`` and one command do not load the whole gateway.
"""

from __future__ import annotations

import sys

import typer

from gateway.cli import (
    audit,
    codelists,
    config,
    dead_letters,
    demo,
    fit_connect_emulator,
    mapping,
    retention,
    schema,
    serve,
    token,
    validate,
)
from gateway.reference_fachverfahren import cli as reference_fachverfahren

COMMANDS = (
    serve,
    validate,
    config,
    codelists,
    mapping,
    schema,
    dead_letters,
    audit,
    token,
    retention,
    demo,
    reference_fachverfahren,
    fit_connect_emulator,
)

app = typer.Typer(
    help="xoev-gateway: XÖV submissions into each municipality's Fachverfahren.",
    no_args_is_help=True,
)
for command in COMMANDS:
    command.register(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["app", "main"]
