"""``xoev-gateway audit list``: who did what, from the audit log."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from gateway.cli._common import ConfigDir, existing_store, run_async, settings_for

audit_app = typer.Typer(help="Read the audit log of admin actions.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 100,
    actor: Annotated[str | None, typer.Option(help="Only this actor, e.g. admin:ops.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action.")] = None,
    target: Annotated[str | None, typer.Option(help="Only this target.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    config: ConfigDir = None,
) -> None:
    """List audit entries: time, actor, action, target, outcome, detail."""
    from gateway.store.audit import AuditLog
    from gateway.store.database import Database
    from gateway.store.migrate import migrate

    settings = existing_store(settings_for(config), config)

    async def main() -> None:
        # The store only: reading the log needs no config, schemas or broker.
        db = Database.open(settings.store_url)
        try:
            await migrate(db)
            entries = await AuditLog(db).entries(
                limit=limit, actor=actor, action=action, target=target
            )
        finally:
            await db.close()
        for e in entries:
            if as_json:
                typer.echo(json.dumps(e.to_json(), ensure_ascii=False))
                continue
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.at))
            detail = json.dumps(e.detail, ensure_ascii=False) if e.detail else ""
            typer.echo(f"{at}\t{e.actor}\t{e.action}\t{e.target or '-'}\t{e.outcome}\t{detail}")

    run_async(main)
