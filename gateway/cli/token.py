"""``xoev-gateway token new``: a random bearer token and the hash for the configuration."""

from __future__ import annotations

from typing import Annotated

import typer

token_app = typer.Typer(help="Make bearer tokens for senders and admins.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")


@token_app.command("new")
def token_new(
    name: Annotated[str, typer.Argument(help="The sender's or admin's name in the config.")],
    admin: Annotated[
        bool, typer.Option("--admin", help="An admin token (section admins).")
    ] = False,
    nbytes: Annotated[
        int, typer.Option("--bytes", min=16, help="Random bytes (at least 16 = 128 bits).")
    ] = 32,
) -> None:
    """Print a new random token once (give it to the sender) and its config entry.

    Only the SHA-256 goes into the configuration; the token itself is not stored
    anywhere, so keep it now or make a new one.
    """
    from gateway.routing.tokens import new_token, sha256_hex

    token = new_token(nbytes)
    digest = sha256_hex(token)
    entry = f'admins:\n  {name}:\n    token_sha256: "{digest}"\n'
    if not admin:
        entry = (
            f'senders:\n  {name}:\n    token_sha256: "{digest}"\n'
            "    services: []   # message types or LeiKa keys it may send\n"
            "    regions: []    # AGS/ARS prefixes it may send for\n"
        )
    typer.echo(f"token:  {token}\nsha256: {digest}\n\n# for the configuration:\n{entry}", nl=False)
