"""``xoev-gateway fit-connect-emulator serve|send`` (registered by ``gateway.cli``)."""

from __future__ import annotations

import asyncio
import mimetypes
import os
from pathlib import Path
from typing import Annotated

import httpx
import typer

from gateway.testing.fitconnect.sender import OutgoingAttachment, Tamper, send
from gateway.testing.fitconnect.server import DEMO_DESTINATION, run

# Names of environment variables, never the secrets themselves.
SUBSCRIBER_SECRET_ENV = "FIT_CONNECT_CLIENT_SECRET"  # noqa: S105 (a variable name)
SENDER_SECRET_ENV = "FIT_CONNECT_SENDER_SECRET"  # noqa: S105
CALLBACK_SECRET_ENV = "FIT_CONNECT_CALLBACK_SECRET"  # noqa: S105

emulator_cli = typer.Typer(
    help="A local FIT-Connect Submission API (test tool) and a sender for it.",
    no_args_is_help=True,
)


@emulator_cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8090,
    keys_dir: Annotated[
        Path | None,
        typer.Option(
            help="Set up one destination with the keys in this directory (generated once)."
        ),
    ] = None,
    subscriber_id: Annotated[
        str, typer.Option(help="OAuth client id of the subscriber.")
    ] = "subscriber",
    subscriber_secret_env: Annotated[
        str, typer.Option(help="Env var with the subscriber's client secret.")
    ] = SUBSCRIBER_SECRET_ENV,
    sender_id: Annotated[str, typer.Option(help="OAuth client id of the sender.")] = "sender",
    sender_secret_env: Annotated[
        str, typer.Option(help="Env var with the sender's client secret.")
    ] = SENDER_SECRET_ENV,
    callback_url: Annotated[
        str | None, typer.Option(help="Callback URL of the destination.")
    ] = None,
    callback_secret_env: Annotated[
        str, typer.Option(help="Env var with the callback secret.")
    ] = CALLBACK_SECRET_ENV,
) -> None:
    """Serve the emulator (in memory: everything is gone when it stops)."""
    run(
        host,
        port,
        keys_dir=keys_dir,
        subscriber=(subscriber_id, _secret(subscriber_secret_env)),
        sender=(sender_id, _secret(sender_secret_env)),
        callback_url=callback_url,
        callback_secret=os.environ.get(callback_secret_env) if callback_url else None,
    )


@emulator_cli.command("send")
def send_command(
    xml: Annotated[Path, typer.Argument(help="The XÖV message to send.")],
    attachment: Annotated[
        list[Path] | None, typer.Option("--attachment", "-a", help="Attachment file (repeatable).")
    ] = None,
    api: Annotated[str, typer.Option(help="Submission API base URL.")] = "http://127.0.0.1:8090",
    token_url: Annotated[str | None, typer.Option(help="Token URL (default: <api>/token).")] = None,
    destination_id: Annotated[str, typer.Option(help="Destination id.")] = DEMO_DESTINATION,
    client_id: Annotated[str, typer.Option(help="OAuth client id of the sender.")] = "sender",
    client_secret_env: Annotated[
        str, typer.Option(help="Env var with the sender's client secret.")
    ] = SENDER_SECRET_ENV,
    tamper: Annotated[Tamper, typer.Option(help="Break one thing on purpose.")] = Tamper.NONE,
    deflate: Annotated[bool, typer.Option(help="Compress before encryption (zip=DEF).")] = False,
) -> None:
    """Encrypt a message (+ attachments) to the destination's key and submit it."""
    attachments = tuple(
        OutgoingAttachment(
            path.read_bytes(),
            media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            filename=path.name,
        )
        for path in attachment or []
    )
    try:
        sent = asyncio.run(
            send(
                api_base_url=api,
                token_url=token_url or f"{api.rstrip('/')}/token",
                client_id=client_id,
                client_secret=_secret(client_secret_env),
                destination_id=destination_id,
                xml=xml.read_bytes(),
                attachments=attachments,
                tamper=tamper,
                deflate=deflate,
            )
        )
    except httpx.HTTPError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(5) from exc
    typer.echo(f"submitted {sent.submission_id} (case {sent.case_id}) to {sent.destination_id}")


def _secret(env: str) -> str:
    value = os.environ.get(env)
    if not value:
        typer.echo(f"error: environment variable {env} is not set", err=True)
        raise typer.Exit(6)
    return value
