"""``xoev-gateway validate``: check messages offline, exactly as the API would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from gateway.cli._common import ConfigDir, SchemaDirs, fail, settings_for
from gateway.errors import GatewayError, IntakeError
from gateway.report import ValidationReport

if TYPE_CHECKING:
    from gateway.intake.pipeline import Checked
    from gateway.intake.registry import SchemaRegistry
    from gateway.municipality import RecipientResolver


def register(app: typer.Typer) -> None:
    app.command()(validate)


def validate(
    files: Annotated[list[Path], typer.Argument(help="XML files to check.")],
    config: ConfigDir = None,
    schemas: SchemaDirs = None,
    output: Annotated[
        Format,
        typer.Option("--format", help="text, or json: one validation report per file."),
    ] = "text",
    schema_only: Annotated[
        bool,
        typer.Option(
            "--schema-only",
            help="Only well-formedness, XSD and Schematron; no header or routing checks.",
        ),
    ] = False,
) -> None:
    """Check messages offline, exactly as the API would (parse, XSD, Schematron, header,
    recipient). Exit 2 if any file fails a check; the output names the check."""
    from gateway.intake.registry import SchemaRegistry
    from gateway.municipality import (
        MunicipalityDirectory,
        RecipientResolver,
        municipality_list,
    )

    settings = settings_for(config, schemas)
    try:
        registry = SchemaRegistry.load(settings.all_schema_dirs)
        directory = MunicipalityDirectory.load(municipality_list(settings))
    except GatewayError as exc:
        raise fail(exc) from None
    aliases: dict[str, str] = {}
    if not schema_only and settings.config_source.is_dir():
        from gateway.routing.config import load_config

        try:
            aliases = load_config(settings.config_source).recipients
        except GatewayError:
            aliases = {}
    resolver = RecipientResolver(directory, aliases)
    results = [_one(path, registry, resolver, schema_only) for path in files]
    if output == "json":
        typer.echo(json.dumps([r.to_json() for r in results], indent=2, ensure_ascii=False))
    else:
        for result in results:
            result.echo()
    if any(not r.ok for r in results):
        raise typer.Exit(2)


Format = Literal["text", "json"]


@dataclass
class _Result:
    path: Path
    report: ValidationReport | None = None
    error: GatewayError | None = None
    """What stopped the file: unreadable, or a failed check (``check`` says which)."""
    check: str = ""
    checked: Checked | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": str(self.path),
            "ok": self.ok,
            "report": self.report.to_json() if self.report else None,
        }
        if self.error is not None:
            out["failed_check"] = self.check
            out["problem"] = {"type": self.error.slug, "detail": self.error.detail}
        if self.checked is not None:
            keys = self.checked.keys
            out["routing"] = {
                "message_type": keys.message_type,
                "message_uuid": keys.message_uuid,
                "recipient": keys.recipient,
                "municipality": keys.municipality,
                "author": keys.author,
            }
        return out

    def echo(self) -> None:
        path = self.path
        report = self.report
        if self.error is not None and report is None:
            typer.echo(f"{path}: {self.check} failed: {self.error.slug}: {self.error.detail}")
            return
        assert report is not None
        if self.error is not None and not report.accepted:
            step = report.failed_step
            typer.echo(
                f"{path}: invalid: {step.name if step else self.check} failed: {self.error.detail}"
            )
        elif self.error is not None:
            typer.echo(
                f"{path}: valid against {report.schema_set}, but the {self.check} check "
                f"failed: {self.error.slug}: {self.error.detail}"
            )
        if report.findings or not report.accepted:
            typer.echo(report.text(str(path)))
        if self.checked is None:
            if self.error is None:
                typer.echo(f"{path}: valid {report.schema_set} (schema only)")
            return
        checked = self.checked
        keys = checked.keys
        header = keys.header
        typer.echo(
            f"{path}: valid {checked.schema_set.id} {keys.message_type} "
            f"uuid={keys.message_uuid} recipient={keys.municipality or '-'}"
        )
        # The routing keys as read, so that an administrator sees what the header gave.
        recipient = (
            f"{keys.recipient} -> {keys.municipality}"
            if keys.recipient
            else f"none ({header.recipient_missing}); the transport or the sender's "
            "default_recipient must give one"
        )
        identity = " + ".join(header.identity) or header.message_uuid
        scope = "per sender" if header.per_sender else "gateway-wide"
        typer.echo(f"  header ({checked.schema_set.header.name}):")
        typer.echo(f"    recipient: {recipient}")
        typer.echo(f"    identity: {identity} ({scope})")
        typer.echo(f"    message_type: {keys.message_type}")
        typer.echo(f"    author: {keys.author or '-'}")
        if header.created:
            typer.echo(f"    created: {header.created}")
        if header.files is not None:
            typer.echo(f"    files: {', '.join(header.files) or '-'}")


def _one(
    path: Path, registry: SchemaRegistry, resolver: RecipientResolver, schema_only: bool
) -> _Result:
    from gateway.intake.pipeline import Checked, validated, with_sha256
    from gateway.intake.routing_keys import routing_keys

    result = _Result(path)
    try:
        body = path.read_bytes()
    except OSError as exc:
        result.error, result.check = GatewayError(f"cannot read: {exc.strerror}"), "read"
        return result
    try:
        tree, schema_set, result.report = validated(body, registry)
    except IntakeError as exc:
        result.report, result.error, result.check = exc.report, exc, "validation"
        return result
    result.report = with_sha256(result.report, body)
    if schema_only:
        return result
    try:
        header = schema_set.header.read(tree.getroot(), body)
        keys = routing_keys(header, resolver, schema_set.leika)
    except GatewayError as exc:
        result.error, result.check = exc, "header and recipient"
        return result
    result.checked = Checked(tree, schema_set, keys, result.report)
    return result
