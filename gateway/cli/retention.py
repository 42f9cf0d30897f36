"""``xoev-gateway retention run``, ``erase`` and ``blobs check``: payloads kept only as long
as configured (gateway/retention.py)."""

from __future__ import annotations

import getpass
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.cli._common import ConfigDir, run_async, settings_for

if TYPE_CHECKING:
    from gateway.runtime import Runtime

retention_app = typer.Typer(help="Erase payloads past their retention period.")
blobs_app = typer.Typer(help="Attachment blobs: find and remove what nothing references.")

DryRun = Annotated[bool, typer.Option("--dry-run", help="Only show what would be erased.")]


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app, name="retention")
    app.add_typer(blobs_app, name="blobs")
    app.command()(erase)


@asynccontextmanager
async def _runtime(config: Path | None) -> AsyncIterator[Runtime]:
    from gateway.runtime import Runtime

    runtime = await Runtime.start(settings_for(config), run_worker=False)
    try:
        yield runtime
    finally:
        await runtime.stop()


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


@retention_app.command("run")
def retention_run(config: ConfigDir = None, dry_run: DryRun = False) -> None:
    """Erase every payload whose retention period has passed (the worker does this
    periodically), and remove orphan blobs; one line per submission."""

    async def main() -> None:
        async with _runtime(config) as runtime:
            report = await runtime.retention.run(dry_run=dry_run)
        verb = "would erase" if dry_run else "erased"
        for due in report.due:
            kind = "dead" if due.dead else "delivered"
            typer.echo(f"{verb}\t{due.submission_id}\t{kind}\tdue {_when(due.due_at)}")
        for sha, path, size in report.orphans:
            typer.echo(f"{'would remove' if dry_run else 'removed'}\t{sha or path.name}\t{size}")
        typer.echo(
            f"{len(report.due)} payloads {verb}, {len(report.blobs_removed)} blobs freed, "
            f"{len(report.orphans)} orphan files {'found' if dry_run else 'removed'}",
            err=True,
        )

    run_async(main)


def erase(
    submission_id: Annotated[str, typer.Argument(help="The submission's id.")],
    config: ConfigDir = None,
    by: Annotated[
        str | None, typer.Option(help="Who asks (for the audit log); default: the OS user.")
    ] = None,
) -> None:
    """Erase one submission's payload now (XML and attachments, e.g. on a GDPR Art. 17
    request); ids, hashes and the event log stay. Audited."""

    async def main() -> None:
        async with _runtime(config) as runtime:
            actor = by or f"cli:{getpass.getuser()}"
            erased = await runtime.retention.erase(submission_id, actor, runtime.audit_hook)
        state = "was already erased" if erased.already else "erased"
        typer.echo(f"{erased.submission_id}\t{state} at {_when(erased.erased_at)}")

    run_async(main)


@blobs_app.command("check")
def blobs_check(
    config: ConfigDir = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove what is found.")] = False,
) -> None:
    """List blobs that no kept submission references and abandoned uploads, older than
    the grace period (XOEV_GATEWAY_BLOB_GRACE_SECONDS); exit 1 if any are left."""

    async def main() -> int:
        async with _runtime(config) as runtime:
            orphans = await runtime.retention.sweep(dry_run=not remove)
        for sha, path, size in orphans:
            typer.echo(f"{'removed' if remove else 'orphan'}\t{sha or path.name}\t{size}")
        typer.echo(f"{len(orphans)} orphan files {'removed' if remove else 'found'}", err=True)
        return 1 if orphans and not remove else 0

    if run_async(main):
        raise typer.Exit(1)
