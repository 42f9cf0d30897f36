"""The audit log: who did what to which target, when, and with what outcome.

Every administrative action (replay, reload, erase, preview, reading the audit log or
another sender's submission, ...) is recorded here, from the admin API, the CLI and
signals alike, including refused attempts by an authenticated caller. Rows are only ever
appended; nothing in the gateway updates or deletes them. See ``docs/security.md``.

Usage from a command or an endpoint::

    await runtime.audit.record("admin:ops", "submission.erase", submission_id, "ok",
                               {"blobs": 2})
"""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, select

from gateway.store.database import Database, unavailable_on_failure
from gateway.store.tables import audit_log


class AuditOutcome(StrEnum):
    OK = "ok"
    REFUSED = "refused"
    """The caller was authenticated but not allowed, or the input was refused."""
    FAILED = "failed"
    """Allowed, but it did not work (e.g. a broken configuration on reload)."""


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str | None
    outcome: str
    detail: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "detail": self.detail,
        }


def cli_actor() -> str:
    """The actor of a CLI command: the operating-system user who ran it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (containers with arbitrary uids)
        return "cli:unknown"


class AuditLog:
    """Append and read audit entries on the process's ``Database``.

    ``record`` returns once the entry is committed; it raises ``Unavailable`` when the
    store is down, so a caller can refuse an action it cannot audit.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        actor: str,
        action: str,
        target: str | None,
        outcome: AuditOutcome | str,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        row = {
            "at": time.time(),
            "actor": actor,
            "action": action,
            "target": target,
            "outcome": str(outcome),
            "detail": json.dumps(dict(detail), ensure_ascii=False, default=str)
            if detail is not None
            else None,
        }

        def body(conn: Connection) -> None:
            conn.execute(insert(audit_log), [row])

        with unavailable_on_failure("store"):
            await self.db.write(body)

    async def entries(
        self,
        *,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: float | None = None,
    ) -> list[AuditEntry]:
        """Newest first."""
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if actor is not None:
            query = query.where(audit_log.c.actor == actor)
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if target is not None:
            query = query.where(audit_log.c.target == target)
        if since is not None:
            query = query.where(audit_log.c.at >= since)

        def body(conn: Connection) -> list[AuditEntry]:
            return [
                AuditEntry(
                    id=r.id,
                    at=r.at,
                    actor=r.actor,
                    action=r.action,
                    target=r.target,
                    outcome=r.outcome,
                    detail=json.loads(r.detail) if r.detail else None,
                )
                for r in conn.execute(query)
            ]

        with unavailable_on_failure("store"):
            return await self.db.read(body)
