"""``xoev-gateway dead-letters``: list and replay dead deliveries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.cli._common import ConfigDir, existing_store, run_async, settings_for

if TYPE_CHECKING:
    from gateway.runtime import Runtime

dead_app = typer.Typer(help="List and replay dead deliveries.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(dead_app, name="dead-letters")


@asynccontextmanager
async def _runtime(config: Path | None) -> AsyncIterator[Runtime]:
    from gateway.runtime import Runtime

    settings = existing_store(settings_for(config), config)
    runtime = await Runtime.start(settings, run_worker=False)
    try:
        yield runtime
    finally:
        await runtime.stop()


@dead_app.command("list")
def dead_list(config: ConfigDir = None) -> None:
    """List dead deliveries with their reason."""

    from gateway.store.audit import cli_actor

    async def main() -> None:
        async with _runtime(config) as runtime:
            items = await runtime.broker.dead_letters()
            await runtime.audit.record(
                cli_actor(), "dead-letters.list", None, "ok", {"count": len(items)}
            )
            for d in items:
                typer.echo(f"{d.item.delivery_id}\t{d.item.destination}\t{d.attempts}\t{d.reason}")

    run_async(main)


@dead_app.command("replay")
def dead_replay(
    delivery_ids: Annotated[
        list[str] | None, typer.Argument(help="Deliveries; all if none.")
    ] = None,
    config: ConfigDir = None,
) -> None:
    """Make dead deliveries ready again (after the cause is fixed)."""
    from gateway.errors import GatewayError
    from gateway.runtime import replay_dead
    from gateway.store.audit import cli_actor

    async def main() -> None:
        async with _runtime(config) as runtime:
            target = ",".join(delivery_ids) if delivery_ids else "*"
            try:
                replayed = await replay_dead(runtime, delivery_ids or None)
            except GatewayError as exc:
                await runtime.audit.record(
                    cli_actor(), "dead-letters.replay", target, "failed", {"error": exc.detail}
                )
                raise
            await runtime.audit.record(
                cli_actor(), "dead-letters.replay", target, "ok", {"replayed": replayed}
            )
            typer.echo(f"replayed {len(replayed)} deliveries")

    run_async(main)
