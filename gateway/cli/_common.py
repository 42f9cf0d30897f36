"""What every command shares: the common options, settings, and running async work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from gateway.errors import GatewayError
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.intake.registry import SchemaRegistry
    from gateway.municipality import MunicipalityDirectory
    from gateway.routing.config import GatewayConfig

T = TypeVar("T")

ConfigDir = Annotated[
    Path | None, typer.Option("--config", "-c", help="Configuration directory (*.yaml).")
]
SchemaDirs = Annotated[
    list[Path] | None, typer.Option("--schemas", help="Extra schema catalog directory.")
]


def fail(exc: GatewayError) -> typer.Exit:
    """The error's message on stderr and its exit code (one per leaf of the error tree)."""
    typer.echo(f"error: {exc.detail}", err=True)
    return typer.Exit(exc.exit_code)


def settings_for(config: Path | None = None, schemas: list[Path] | None = None) -> Settings:
    settings = Settings()
    if config is not None:
        settings.config_dir = config
    if schemas:
        settings.schema_dirs = [*settings.schema_dirs, *schemas]
    return settings


def run_async(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async command to its end; a gateway error exits with its code and message."""
    try:
        return asyncio.run(main())
    except GatewayError as exc:
        raise fail(exc) from None


def load_all(settings: Settings) -> tuple[GatewayConfig, SchemaRegistry, MunicipalityDirectory]:
    """Configuration, schema registry and municipality list, as a running gateway has them."""
    from gateway.intake.registry import SchemaRegistry
    from gateway.municipality import MunicipalityDirectory
    from gateway.routing.config import load_config

    return (
        load_config(settings.config_source),
        SchemaRegistry.load(settings.all_schema_dirs),
        MunicipalityDirectory.load(settings.municipality_list),
    )


def echo_header(rows: list[tuple[str, str]], indent: str = "  ") -> None:
    """A schema set's header fields and their XPaths, aligned."""
    width = max(len(name) for name, _ in rows)
    for name, xpath in rows:
        typer.echo(f"{indent}{name:<{width}}  {xpath}")
