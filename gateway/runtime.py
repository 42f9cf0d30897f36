"""Wiring: builds settings, registry, config, store, broker and worker once, and passes them on."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.accept import Accepted, Acceptor, Incoming
from gateway.broker.base import Broker
from gateway.broker.embedded import EmbeddedQueue
from gateway.broker.relay import OutboxRelay
from gateway.errors import ConfigError, GatewayError, Unavailable
from gateway.intake.processes import InProcess, IntakeProcesses, auto_process_count
from gateway.intake.registry import SchemaRegistry
from gateway.municipality import MunicipalityDirectory, municipality_list
from gateway.retention import AuditEntry as RetentionAuditEntry
from gateway.retention import Retention
from gateway.routing.config import GatewayConfig, load_config
from gateway.settings import Settings
from gateway.shipped import copy_example_config
from gateway.store.audit import AuditLog, AuditOutcome
from gateway.store.blobs import BlobStore, private_dir
from gateway.store.database import Database
from gateway.store.disk import below_floor
from gateway.store.migrate import migrate
from gateway.store.states import WorkState
from gateway.store.store import Store
from gateway.telemetry import metrics
from gateway.telemetry.logs import fields
from gateway.worker import Worker

if TYPE_CHECKING:
    from gateway.sources.fitconnect.settings import FitConnectSettings
    from gateway.sources.fitconnect.source import FitConnectSource
    from gateway.sources.fitconnect.subscriber import Result

log = logging.getLogger("xoev_gateway")


def refuse_demo_tokens(settings: Settings, config: GatewayConfig) -> None:
    """A server that takes requests refuses the public demo tokens unless in demo mode."""
    if config.demo_credentials and not settings.demo:
        raise ConfigError(
            f"{', '.join(config.demo_credentials)} use a public demo token: replace them "
            "with tokens from 'xoev-gateway token new', or turn demo mode on (--demo or "
            "XOEV_GATEWAY_DEMO=true) to try the gateway out"
        )


def make_broker(
    settings: Settings, db: Database, destinations: Callable[[], Iterable[str]] = lambda: ()
) -> Broker:
    """``destinations`` names the configured destinations (RabbitMQ: one queue each)."""
    if settings.broker == "embedded":
        if db.dialect != "sqlite":
            raise ConfigError("the embedded queue needs the SQLite store; use broker=rabbitmq")
        return EmbeddedQueue(db, lease_seconds=settings.lease_seconds)
    if settings.broker == "rabbitmq":
        from gateway.broker.rabbitmq import RabbitBroker

        return RabbitBroker(
            settings.amqp_url,
            prefix=settings.rabbitmq_prefix,
            prefetch=settings.rabbitmq_prefetch,
            confirm_timeout=settings.rabbitmq_confirm_timeout,
            delay_tiers=settings.rabbitmq_delay_tiers,
            destinations=destinations,
        )
    raise ConfigError(f"broker '{settings.broker}' is not available in this build")


async def _when_available(start: Callable[[], Awaitable[None]], what: str, wait: float) -> None:
    """Retry ``start`` while it finds its service down, for ``wait`` seconds: a worker
    restarted during a RabbitMQ restart, or started before PostgreSQL, waits instead of
    exiting; past ``wait`` the error stands (the process exits and says why)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    delay = 0.5
    while True:
        try:
            await start()
            return
        except Unavailable as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning("%s not reachable yet, retrying in %.1f s: %s", what, delay, exc.detail)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


@dataclass
class Runtime:
    settings: Settings
    registry: SchemaRegistry
    directory: MunicipalityDirectory
    db: Database
    store: Store
    broker: Broker
    blobs: BlobStore
    acceptor: Acceptor
    retention: Retention
    worker: Worker | None = None
    relay: OutboxRelay | None = None
    on_loaded: Callable[[], None] | None = None
    serve_api: bool = False
    fit_connect: FitConnectSource | None = None
    """The FIT-Connect source when ``fit-connect.yaml`` configures one (API processes only);
    it polls only where ``settings.sources`` is true, but checks callbacks everywhere."""
    _hosts_sources: bool = False
    _fit_connect_print: str | None = field(default=None, repr=False)
    _worker_task: asyncio.Task[None] | None = field(default=None, repr=False)
    _relay_task: asyncio.Task[None] | None = field(default=None, repr=False)
    _retention_task: asyncio.Task[None] | None = field(default=None, repr=False)
    _source_task: asyncio.Task[None] | None = field(default=None, repr=False)
    _retired: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    schema_digest: str = ""
    _schema_reload: asyncio.Task[None] | None = field(default=None, repr=False)
    audit: AuditLog = field(init=False, repr=False)
    """Where admin actions are recorded (``gateway.store.audit``)."""
    _pending_audits: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    scraped: metrics.ScrapedState | None = field(default=None, repr=False)
    """The store's queue gauges, refreshed when ``/metrics`` is scraped."""

    def __post_init__(self) -> None:
        self.audit = AuditLog(self.db)

    async def audit_hook(self, entry: RetentionAuditEntry) -> None:
        """The retention module's ``Audit`` hook into the audit log: an erasure, done
        (``erased``, ``already erased``) or refused (``refused: <why>``)."""
        refused, _, why = entry.outcome.partition("refused: ")
        if not refused and why:
            await self.audit.record(
                entry.actor, f"submission.{entry.action}", entry.target,
                AuditOutcome.REFUSED, {"error": why},
            )  # fmt: skip
            return
        await self.audit.record(
            entry.actor, f"submission.{entry.action}", entry.target, AuditOutcome.OK,
            {"result": entry.outcome},
        )  # fmt: skip

    async def before_scrape(self) -> None:
        if self.scraped is None:
            self.scraped = metrics.ScrapedState(
                self.store.queue_rows, self._ready, lambda: self.config.destinations
            )
        await self.scraped.refresh()

    async def _ready(self) -> bool:
        try:
            await self.store.ping()
            await self.broker.ping()
        except Exception:
            return False
        return True

    @property
    def config(self) -> GatewayConfig:
        return self.acceptor.config

    def storage_below_floor(self) -> str | None:
        """Why the data directory (or the SQLite file's) is too full to stay ready, or None."""
        paths = [self.blobs.root]
        if self.db.path is not None and self.db.path.parent != self.blobs.root.parent:
            paths.append(self.db.path.parent)
        return below_floor(paths, self.settings.min_free_bytes, self.settings.min_free_percent)

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        run_worker: bool,
        run_relay: bool = False,
        serve_api: bool = False,
        on_loaded: Callable[[], None] | None = None,
    ) -> Runtime:
        """``run_relay``: publish the store's outbox (only brokers that use one);
        ``serve_api``: submissions arrive, so start the intake processes (if configured)
        and the inbound sources (``fit-connect.yaml``; polling only if ``settings.sources``);
        ``on_loaded``: called once everything is loaded and after each config reload (a
        server process freezes its start-up heap there, see ``gateway.process``)."""
        # Database, blobs and spooled state hold citizens' data: private to our user.
        private_dir(settings.data_dir)
        if settings.config_dir is None:
            settings = settings.model_copy(
                update={"config_dir": copy_example_config(settings.example_config)}
            )
            log.warning(
                "no configuration given (--config or XOEV_GATEWAY_CONFIG_DIR): running the "
                "shipped example configuration, copied to %s; its demo tokens are public",
                settings.config_dir,
            )
        digest = schema_digest(settings.all_schema_dirs)
        config = load_config(settings.config_source)
        if serve_api:
            refuse_demo_tokens(settings, config)
        registry = SchemaRegistry.load(settings.all_schema_dirs)
        directory = MunicipalityDirectory.load(municipality_list(settings))
        fit_connect = _load_fit_connect(settings) if serve_api else None
        db = Database.open(
            settings.store_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_busy_seconds=settings.sqlite_busy_seconds,
        )
        try:
            # A SQLite file is no service that comes up later: its errors stand at once.
            wait = 0 if db.dialect == "sqlite" else settings.startup_wait
            await _when_available(lambda: migrate(db), "database", wait)
            # Late-bound: the broker always sees the destinations of the active config.
            broker = make_broker(settings, db, lambda: runtime.config.destinations)
        except BaseException:
            await db.close()
            raise
        store = Store(db)
        blobs = BlobStore(settings.blob_dir)

        def stored() -> None:  # a new submission committed: wake whoever takes its work
            broker.notify()
            if runtime.relay is not None:
                runtime.relay.notify()

        work_state = broker.work_state
        acceptor = Acceptor(InProcess(registry), directory, config, store, work_state, stored)
        retention = Retention(
            store, blobs, lambda: runtime.config, blob_grace_seconds=settings.blob_grace_seconds
        )
        runtime = cls(
            settings,
            registry,
            directory,
            db,
            store,
            broker,
            blobs,
            acceptor,
            retention,
            on_loaded=on_loaded,
            serve_api=serve_api,
            schema_digest=digest,
        )
        try:
            await _when_available(broker.start, "broker", settings.startup_wait)
            count = settings.intake_processes
            count = auto_process_count() if count is None else count
            if serve_api and count > 0:
                runtime.acceptor = Acceptor(
                    await IntakeProcesses.start(
                        settings.all_schema_dirs, count, call_timeout=settings.intake_timeout
                    ),
                    directory,
                    config,
                    store,
                    work_state,
                    stored,
                )
        except BaseException:
            await broker.close()
            await store.close()
            await db.close()
            raise
        if run_relay and broker.work_state == WorkState.OUTBOX:
            runtime.relay = OutboxRelay(
                db,
                broker,
                batch_size=settings.relay_batch,
                poll_seconds=settings.poll_seconds,
            )
            runtime._relay_task = asyncio.create_task(runtime.relay.run())
        if run_worker:
            runtime.worker = Worker(
                store,
                broker,
                blobs,
                lambda: runtime.config,
                concurrency=settings.worker_concurrency,
                poll_seconds=settings.poll_seconds,
                # Only the embedded queue's leases expire; RabbitMQ's last with the channel.
                lease_seconds=settings.lease_seconds if isinstance(broker, EmbeddedQueue) else None,
            )
            runtime._worker_task = asyncio.create_task(runtime.worker.run())
            if settings.retention_interval_seconds > 0:
                runtime._retention_task = asyncio.create_task(
                    retention.run_periodically(settings.retention_interval_seconds)
                )
        runtime._hosts_sources = serve_api
        if fit_connect is not None:
            try:
                runtime._start_fit_connect(fit_connect)
            except BaseException:
                await runtime.stop()
                raise
        metrics.config_loaded(config.version)
        log.info(
            "configuration %s loaded",
            config.version,
            extra=fields(event="config.loaded", config_version=config.version),
        )
        if on_loaded is not None:
            on_loaded()
        return runtime

    def _start_fit_connect(self, fit_settings: FitConnectSettings) -> None:
        """Build the source (reads the secrets' env variables: a missing one raises
        ``ConfigError``) and run it if this process polls; replaces a running one."""
        from gateway.sources.accept_sink import AcceptPathSink
        from gateway.sources.fitconnect.settings import fingerprint
        from gateway.sources.fitconnect.source import FitConnectSource

        source = FitConnectSource(
            fit_settings, AcceptPathSink(self.accept, self.blobs), on_result=self._source_result
        )
        self._stop_fit_connect()
        self.fit_connect = source
        self._fit_connect_print = fingerprint(fit_settings)
        if self.settings.sources:
            self._source_task = asyncio.create_task(source.run())
            log.info("FIT-Connect source polling %d destination(s)", len(fit_settings.destinations))

    def _stop_fit_connect(self) -> None:
        # Cancelling mid-submission is safe: whatever was stored is found again as a
        # duplicate on the next fetch and answered then (answers are idempotent).
        if self._source_task is not None:
            self._source_task.cancel()
            self._retired.append(self._source_task)
            self._source_task = None
        elif self.fit_connect is not None:  # built, never run (sources=false): its client
            self._retired.append(asyncio.create_task(self.fit_connect.close()))
        self.fit_connect = None
        self._fit_connect_print = None

    async def _source_result(self, result: Result) -> None:
        from gateway.sources.fitconnect.subscriber import Outcome

        if result.outcome is not Outcome.ACCEPTED or result.gateway_id is None:
            return
        try:
            await self.store.record_source_event(
                result.gateway_id,
                "fit-connect.accept-sent",
                {"event": "accept-submission", "submission_id": result.submission_id},
            )
        except Unavailable as exc:
            # The accept is on the case already; only our own log entry of it is missing.
            log.warning("event log: accept of %s not recorded: %s", result.gateway_id, exc)

    def sources_state(self) -> dict[str, object]:
        if self.fit_connect is None:
            return {}
        return {"fit-connect": self.fit_connect.state()}

    async def stop(self) -> None:
        """Graceful: the worker takes no new work and finishes what it holds, the relay
        finishes its batch, then the broker hands back anything still unacked. Sources stop
        first: nothing new is fetched while the rest winds down."""
        self._stop_fit_connect()
        for task in self._retired:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._retired.clear()
        if self._retention_task is not None:
            self.retention.stop()
            await self._retention_task
        if self.worker is not None and self._worker_task is not None:
            self.worker.stop()
            await self._worker_task
        if self.relay is not None and self._relay_task is not None:
            self.relay.stop()
            await self._relay_task
        if self._pending_audits:
            await asyncio.gather(*self._pending_audits)
        await self.broker.close()
        await self.store.close()
        await self.db.close()
        await self.acceptor.examiner.close()

    def reload_config(self) -> GatewayConfig:
        """Load the config directory and the schema catalogs again (the catalogs only when a
        file in a schema directory changed); a broken config or catalog raises and the old
        ones stay. The intake processes take the new schemas in the background
        (``schemas_reloaded`` waits for that).

        A changed ``fit-connect.yaml`` (or key file) restarts the FIT-Connect source with the
        new settings; a broken one refuses the whole reload (docs/fit-connect.md)."""
        try:
            digest = schema_digest(self.settings.all_schema_dirs)
            registry = None
            if digest != self.schema_digest:
                registry = SchemaRegistry.load(self.settings.all_schema_dirs)
            config = load_config(self.settings.config_source)
            if self.serve_api:
                refuse_demo_tokens(self.settings, config)
            # An imported AGS list (``codelists import``) takes effect with the reload too.
            directory = MunicipalityDirectory.load(municipality_list(self.settings))
            if self._hosts_sources:
                self._reload_fit_connect(_load_fit_connect(self.settings))
        except GatewayError as exc:
            metrics.CONFIG_RELOADS.labels("refused").inc()
            # The detail names file, line and key of the configuration, never payload data.
            log.error(
                "config reload refused, %s stays active: %s",
                self.config.version,
                exc.detail,
                extra=fields(
                    event="config.refused",
                    config_version=self.config.version,
                    problem=exc.slug,
                ),
            )
            raise
        if registry is not None:
            self.registry, self.schema_digest = registry, digest
            task = asyncio.get_running_loop().create_task(self.acceptor.examiner.reload(registry))
            self._schema_reload = task
            log.info("schema catalogs reloaded: %s schema sets", len(registry.sets))
        self.directory = directory
        self.acceptor = self.acceptor.with_config(config, directory)
        metrics.CONFIG_RELOADS.labels("loaded").inc()
        metrics.config_loaded(config.version)
        log.info(
            "configuration %s active",
            config.version,
            extra=fields(event="config.reloaded", config_version=config.version),
        )
        if self.on_loaded is not None:
            self.on_loaded()
        return config

    async def schemas_reloaded(self) -> None:
        """Wait until the intake processes run the schemas of the last reload."""
        if self._schema_reload is not None:
            await asyncio.shield(self._schema_reload)

    def _reload_fit_connect(self, fit_settings: FitConnectSettings | None) -> None:
        if fit_settings is None:
            if self.fit_connect is not None:
                log.info("fit-connect.yaml removed: FIT-Connect source stopped")
            self._stop_fit_connect()
            return
        from gateway.sources.fitconnect.settings import fingerprint

        if fingerprint(fit_settings) != self._fit_connect_print:
            self._start_fit_connect(fit_settings)
            log.info("FIT-Connect source restarted with the reloaded settings")

    def reload_or_keep(self) -> bool:
        """Reload for SIGHUP: a refused config is logged and the running one stays active;
        either way the reload is audited (actor ``signal:SIGHUP``)."""
        previous = self.config.version
        try:
            config = self.reload_config()
        except GatewayError as exc:  # logged by reload_config
            self.audit_later(
                "signal:SIGHUP",
                "config.reload",
                None,
                AuditOutcome.FAILED,
                {"previous_version": previous, "error": exc.detail},
            )
            return False
        self.audit_later(
            "signal:SIGHUP",
            "config.reload",
            config.version,
            AuditOutcome.OK,
            {"previous_version": previous},
        )
        return True

    def audit_later(
        self,
        actor: str,
        action: str,
        target: str | None,
        outcome: AuditOutcome,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record from synchronous code (a signal handler) on the running loop; a record
        that fails is logged, since nobody waits for it."""

        async def record() -> None:
            try:
                await self.audit.record(actor, action, target, outcome, detail)
            except GatewayError as exc:
                log.error("audit record of %s by %s failed: %s", action, actor, exc.detail)

        task = asyncio.get_running_loop().create_task(record())
        self._pending_audits.add(task)
        task.add_done_callback(self._pending_audits.discard)

    async def accept(self, incoming: Incoming) -> Accepted:
        """The accept path every source calls; always with the active configuration."""
        return await self.acceptor.accept(incoming)


def schema_digest(directories: list[Path]) -> str:
    """Names, sizes and modification times of every file in the schema directories: a
    reload compiles the catalogs again only when one changed (Schematron takes seconds)."""
    digest = hashlib.sha256()
    for directory in directories:
        for path in sorted(directory.rglob("*")):
            with contextlib.suppress(OSError):
                stat = path.stat()
                digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _load_fit_connect(settings: Settings) -> FitConnectSettings | None:
    # Imported only where a source is configured: JOSE and JSON Schema are not loaded else.
    if not (settings.config_source / "fit-connect.yaml").is_file():
        return None
    from gateway.sources.fitconnect.settings import load

    return load(settings.config_source)


async def replay_dead(runtime: Runtime, delivery_ids: list[str] | None) -> list[str]:
    # Mark the deliveries pending BEFORE the broker hands them out again: a worker that
    # got one while the store still said 'dead' would ack it as a settled duplicate.
    wanted = set(delivery_ids) if delivery_ids is not None else None
    dead = {
        d.item.delivery_id: d.item.destination
        for d in await runtime.broker.dead_letters()
        if wanted is None or d.item.delivery_id in wanted
    }
    ids = list(dead)
    await runtime.store.record_replayed(ids)
    replayed = await runtime.broker.replay(ids)
    metrics.REPLAYED.inc(len(replayed))
    for delivery_id in replayed:
        log.info(
            "delivery replayed",
            extra=fields(
                event="delivery.replayed",
                delivery_id=delivery_id,
                destination=dead.get(delivery_id),
            ),
        )
    return replayed


__all__ = ["GatewayError", "Runtime", "make_broker", "replay_dead"]
