"""Wiring: builds settings, registry, config, store, broker and worker once, and passes them on."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from gateway.broker.base import Broker
from gateway.broker.embedded import EmbeddedQueue
from gateway.errors import ConfigError, GatewayError
from gateway.intake.pipeline import Intake
from gateway.intake.registry import SchemaRegistry
from gateway.intake.routing_keys import MunicipalityDirectory
from gateway.routing.config import GatewayConfig, load_config
from gateway.settings import Settings
from gateway.store.blobs import BlobStore
from gateway.store.records import AttachmentRecord
from gateway.store.store import Store
from gateway.worker import Worker

log = logging.getLogger("xoev_gateway")


def make_broker(settings: Settings, store: Store) -> Broker:
    if settings.broker == "embedded":
        if not settings.store_url.startswith("sqlite"):
            raise ConfigError("the embedded queue needs the SQLite store; use broker=rabbitmq")
        return EmbeddedQueue(store.engine, lease_seconds=settings.lease_seconds)
    raise ConfigError(f"broker '{settings.broker}' is not available in this build")


@dataclass
class Runtime:
    settings: Settings
    registry: SchemaRegistry
    directory: MunicipalityDirectory
    store: Store
    broker: Broker
    blobs: BlobStore
    intake: Intake
    worker: Worker | None = None
    _worker_task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def config(self) -> GatewayConfig:
        return self.intake.config

    @classmethod
    async def start(cls, settings: Settings, *, run_worker: bool) -> Runtime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        registry = SchemaRegistry.load(settings.all_schema_dirs)
        directory = MunicipalityDirectory.load(settings.municipality_list)
        config = load_config(settings.config_dir)
        store = Store.from_url(
            settings.store_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_busy_seconds=settings.sqlite_busy_seconds,
        )
        await store.migrate()
        broker = make_broker(settings, store)
        await broker.start()
        blobs = BlobStore(settings.blob_dir)
        runtime = cls(
            settings, registry, directory, store, broker, blobs, Intake(registry, directory, config)
        )
        if run_worker:
            runtime.worker = Worker(
                store,
                broker,
                blobs,
                lambda: runtime.config,
                concurrency=settings.worker_concurrency,
                poll_seconds=settings.poll_seconds,
            )
            runtime._worker_task = asyncio.create_task(runtime.worker.run())
        return runtime

    async def stop(self) -> None:
        if self.worker is not None and self._worker_task is not None:
            self.worker.stop()
            await self._worker_task
        await self.broker.close()
        await self.store.close()

    def reload_config(self) -> GatewayConfig:
        """Load the config directory again; a broken config raises and the old one stays."""
        config = load_config(self.settings.config_dir)
        self.intake = self.intake.with_config(config)
        log.info("configuration %s active", config.version)
        return config

    def reload_or_keep(self) -> bool:
        """Reload for SIGHUP: a refused config is logged and the running one stays active."""
        try:
            self.reload_config()
        except GatewayError as exc:
            log.error("config reload refused, %s stays active: %s", self.config.version, exc.detail)
            return False
        return True

    async def accept(
        self, body: bytes, sender: str, attachments: list[AttachmentRecord]
    ) -> tuple[str, bool]:
        new = self.intake.prepare(body, sender, attachments)
        submission_id, created = await self.store.accept(new, self.broker.work_state)
        if created:
            self.broker.notify()
        return submission_id, created


async def replay_dead(runtime: Runtime, delivery_ids: list[str] | None) -> list[str]:
    replayed = await runtime.broker.replay(delivery_ids)
    await runtime.store.record_replayed(replayed)
    return replayed


__all__ = ["GatewayError", "Runtime", "make_broker", "replay_dead"]
