"""What every command shares: the common options, settings, and running async work."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from gateway.errors import GatewayError, InvalidSettings
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


SETTINGS_FILE = "gateway.env"
"""Settings beside the configuration (``XOEV_GATEWAY_*=...`` lines, like ``.env``): every
command given ``--config DIR`` reads ``DIR/gateway.env``, so that ``dead-letters list
--config DIR`` run from anywhere finds the store that ``serve --config DIR`` writes.
The environment overrides the file; a relative ``data_dir`` in it is taken relative to DIR."""


def settings_for(config: Path | None = None, schemas: list[Path] | None = None) -> Settings:
    try:
        settings = load_settings()
    except GatewayError as exc:
        raise fail(exc) from None
    if config is not None:
        beside = config / SETTINGS_FILE
        if beside.is_file():
            settings = Settings(_env_file=(".env", beside))
            if not settings.data_dir.is_absolute() and "XOEV_GATEWAY_DATA_DIR" not in os.environ:
                from_file = Settings(_env_file=beside)
                if from_file.data_dir != Settings.model_fields["data_dir"].default:
                    settings.data_dir = (config / settings.data_dir).resolve()
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
    from gateway.municipality import MunicipalityDirectory, municipality_list
    from gateway.routing.config import load_config

    return (
        load_config(settings.config_source),
        SchemaRegistry.load(settings.all_schema_dirs),
        MunicipalityDirectory.load(municipality_list(settings)),
    )


def existing_store(settings: Settings, config: Path | None) -> Settings:
    """``settings`` if its store exists; a command that only reads never creates one."""
    from gateway.errors import StoreNotFound

    if settings.database_url:  # a server database: its own errors speak for it
        return settings
    path = (settings.data_dir / "gateway.db").resolve()
    if not path.is_file():
        hint = f"{config / SETTINGS_FILE}, " if config is not None else ""
        raise StoreNotFound(
            f"no gateway database at {path} (data_dir from XOEV_GATEWAY_DATA_DIR, "
            f"{hint}.env or the default ./var); nothing was created"
        )
    return settings


def echo_header(rows: list[tuple[str, str]], indent: str = "  ") -> None:
    """A schema set's header fields and their XPaths, aligned."""
    width = max(len(name) for name, _ in rows)
    for name, xpath in rows:
        typer.echo(f"{indent}{name:<{width}}  {xpath}")


def load_settings() -> Settings:
    """The settings from the environment; a wrong variable is one ``InvalidSettings`` line
    naming it and the cause (never pydantic's multi-line dump)."""
    try:
        return Settings()
    except ValidationError as exc:
        causes = []
        for error in exc.errors():
            field = "_".join(str(p) for p in error["loc"][:1]).upper()
            causes.append(f"XOEV_GATEWAY_{field}: {error['msg']} (got {error['input']!r})")
        raise InvalidSettings("; ".join(causes)) from None
    except SettingsError as exc:
        raise InvalidSettings(f"{exc} (a JSON value is expected)") from None
