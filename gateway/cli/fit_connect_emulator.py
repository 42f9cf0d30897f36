"""``xoev-gateway fit-connect-emulator serve|send``: the local FIT-Connect Submission API.

A test and demo tool (``gateway.testing.fitconnect``), which the CLI may use: only the
product layers are kept from test tooling. The sub-app is loaded when the command runs, so
that ``xoev-gateway --help`` does not pay for the emulator's crypto imports (~0.4 s).
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command(
        "fit-connect-emulator",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(fit_connect_emulator)


def fit_connect_emulator(ctx: typer.Context) -> None:
    """A local FIT-Connect Submission API (test tool) and a sender: serve | send (--help)."""
    from gateway.testing.fitconnect.cli import emulator_cli

    typer.main.get_command(emulator_cli).main(
        args=ctx.args, prog_name="xoev-gateway fit-connect-emulator"
    )
