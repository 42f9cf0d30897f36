"""Retention and erasure: payloads (XML, attachment blobs) go, the evidence stays.

A submission's payload is erased once every delivery reached a final state and the
configured period after the *last* of them has passed (``retention`` in the configuration,
see ``gateway/routing/policies.py``; delivered and dead have separate periods, and a
delivery replayed is pending again, so it holds the payload). What stays: the submission's
ids, message UUID, SHA-256 of the XML, attachment names, hashes and sizes, timestamps,
deliveries with receipts and problems, and the event log, which gains ``payload.erased``.

Blobs are content-addressed, so one blob may serve several submissions: it is removed only
when no submission whose payload is kept references it (see ``gateway/store/blobs.py`` for
how a removal and a concurrent upload of the same content are kept apart). Blobs that
nothing references (rejected uploads the prompt removal could not take, crashes) are
removed by the sweep once older than a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import GatewayError
from gateway.routing.config import GatewayConfig
from gateway.routing.policies import DAY
from gateway.store.blobs import INCOMING, BlobStore
from gateway.store.records import ErasedPayload, RetentionCandidate
from gateway.store.states import DeliveryState
from gateway.store.store import Store
from gateway.telemetry.logs import fields
from gateway.telemetry.metrics import ERASED

log = logging.getLogger("xoev_gateway.retention")

PAGE = 500


@dataclass(frozen=True)
class AuditEntry:
    """One administrative action, for the audit log: who did what to what, and how it went."""

    actor: str
    action: str
    target: str
    outcome: str


Audit = Callable[[AuditEntry], Awaitable[None]]
"""Where erasures are reported; the runtime passes the gateway's audit log."""


async def not_audited(entry: AuditEntry) -> None:
    """The default hook: logs only. AUDIT HOOK: the audit log plugs in here."""
    log.info("audit: %s %s %s: %s", entry.actor, entry.action, entry.target, entry.outcome)


@dataclass(frozen=True)
class Due:
    submission_id: str
    received_at: float
    due_at: float
    dead: bool
    """Erased under the period for dead deliveries (at least one delivery is dead)."""


@dataclass
class RetentionReport:
    due: list[Due] = field(default_factory=list)
    erased: list[str] = field(default_factory=list)
    blobs_removed: list[str] = field(default_factory=list)
    orphans: list[tuple[str | None, Path, int]] = field(default_factory=list)
    """Unreferenced blobs (sha) and abandoned temp files (None) found by the sweep."""


def _log_erased(submission_id: str, why: str, actor: str | None = None) -> None:
    ERASED.labels(why).inc()
    log.info(
        "payload erased (%s)",
        why,
        extra=fields(event="payload.erased", submission_id=submission_id, why=why, actor=actor),
    )


def due_at(config: GatewayConfig, candidate: RetentionCandidate) -> float | None:
    """When the candidate's payload may go: the latest final state plus its period; None
    if any delivery's period is unlimited (or there are no deliveries)."""
    if not candidate.deliveries:
        return None
    services = [s for s in (candidate.message_type, candidate.leika) if s]
    latest = 0.0
    for destination, state, at in candidate.deliveries:
        seconds = config.retention.seconds(services, destination, dead=state == DeliveryState.DEAD)
        if seconds is None:
            return None
        latest = max(latest, at + seconds)
    return latest


def shortest_period(config: GatewayConfig) -> float | None:
    """The shortest period configured anywhere: nothing received later can be due."""
    r = config.retention
    levels = [r.default, *r.services.values(), *r.destinations.values()]
    days = [
        d
        for level in levels
        for d in (level.payload_days, level.dead_payload_days)
        if d is not None
    ]
    return min(days) * DAY if days else None


class Retention:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        config: Callable[[], GatewayConfig],
        *,
        blob_grace_seconds: float = 3600.0,
        page_size: int = PAGE,
    ) -> None:
        self.store = store
        self.page_size = page_size
        self.blobs = blobs
        self.config = config
        self.blob_grace_seconds = blob_grace_seconds
        self._stopping = asyncio.Event()

    async def due(self, now: float | None = None) -> list[Due]:
        now = time.time() if now is None else now
        config = self.config()
        shortest = shortest_period(config)
        if shortest is None:
            return []
        found: list[Due] = []
        after: tuple[float, str] | None = None
        while True:
            page = await self.store.retention_candidates(now - shortest, after, self.page_size)
            for candidate in page:
                when = due_at(config, candidate)
                if when is not None and when <= now:
                    dead = any(s == DeliveryState.DEAD for _, s, _ in candidate.deliveries)
                    found.append(Due(candidate.id, candidate.received_at, when, dead))
            if len(page) < self.page_size:
                return found
            after = (page[-1].received_at, page[-1].id)

    async def run(self, *, dry_run: bool = False, now: float | None = None) -> RetentionReport:
        """Erase what is due and sweep orphan blobs; ``dry_run``: only report them."""
        report = RetentionReport(due=await self.due(now))
        if not dry_run:
            for start in range(0, len(report.due), self.page_size):
                ids = [d.submission_id for d in report.due[start : start + self.page_size]]
                erased = await self.store.erase_payloads(ids, "retention")
                report.erased += [e.submission_id for e in erased if not e.already]
                for e in erased:
                    if not e.already:
                        _log_erased(e.submission_id, "retention")
                report.blobs_removed += await self.remove_unreferenced(
                    sorted({sha for e in erased for sha in e.attachment_sha256})
                )
        report.orphans = await self.sweep(dry_run=dry_run)
        return report

    async def erase(
        self, submission_id: str, actor: str, audit: Audit = not_audited
    ) -> ErasedPayload:
        """Erase one submission's payload on request (GDPR Art. 17), audited either way."""
        try:
            (erased,) = await self.store.erase_payloads([submission_id], "request", actor)
        except GatewayError as exc:
            await audit(AuditEntry(actor, "erase", submission_id, f"refused: {exc.detail}"))
            raise
        await self.remove_unreferenced(erased.attachment_sha256)
        outcome = "already erased" if erased.already else "erased"
        if not erased.already:
            _log_erased(submission_id, "request", actor)
        await audit(AuditEntry(actor, "erase", submission_id, outcome))
        return erased

    async def remove_unreferenced(self, sha256s: Sequence[str]) -> list[str]:
        """Remove these blobs now unless a kept submission references them; if an upload
        is in flight (it may be about to reference one), leave them to the sweep."""
        if not sha256s:
            return []
        async with self.blobs.no_uploads() as free:
            if not free:
                return []
            referenced = await self.store.referenced_blobs(sha256s)
            return [sha for sha in sha256s if sha not in referenced and self.blobs.remove(sha)]

    async def sweep(self, *, dry_run: bool = False) -> list[tuple[str | None, Path, int]]:
        """Blobs older than the grace period that no kept submission references, and
        abandoned temp files; removed unless ``dry_run``."""
        stale = await asyncio.to_thread(lambda: list(self.blobs.stale(self.blob_grace_seconds)))
        orphans: list[tuple[str | None, Path, int]] = [s for s in stale if s[0] is None]
        blobs = [s for s in stale if s[0] is not None]
        for start in range(0, len(blobs), self.page_size):
            chunk = blobs[start : start + self.page_size]
            referenced = await self.store.referenced_blobs([sha for sha, _, _ in chunk if sha])
            orphans += [s for s in chunk if s[0] not in referenced]
        if dry_run:
            return orphans
        removed = []
        for orphan in orphans:
            if await asyncio.to_thread(self._remove_stale, orphan[1]):
                removed.append(orphan)
        return removed

    def _remove_stale(self, path: Path) -> bool:
        """Move the file aside first: if an upload renamed a fresh copy onto the path just
        now, what was moved is that fresh file, and it goes back (same content)."""
        if path.name.startswith(INCOMING):
            path.unlink(missing_ok=True)
            return True
        aside = path.with_name(f"{INCOMING}sweep-{path.name}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        if aside.stat().st_mtime >= time.time() - self.blob_grace_seconds:
            os.replace(aside, path)
            return False
        aside.unlink()
        return True

    def stop(self) -> None:
        self._stopping.set()

    async def run_periodically(self, interval: float) -> None:
        """The worker's retention job: one run now, then every ``interval`` seconds."""
        while not self._stopping.is_set():
            try:
                report = await self.run()
                if report.erased or report.orphans:
                    log.info(
                        "retention: %d payloads erased, %d blobs removed, %d orphans removed",
                        len(report.erased),
                        len(report.blobs_removed),
                        len(report.orphans),
                    )
            except Exception:
                log.exception("retention run failed; next run in %.0f s", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=interval)
