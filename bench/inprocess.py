"""Scenarios that run inside the benchmark process: validation and delivery rates."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree
from sqlalchemy import func, select

from bench.workload import REPO, documents
from gateway.accept import Acceptor, Incoming
from gateway.broker.embedded import EmbeddedQueue
from gateway.intake.pipeline import check
from gateway.intake.processes import InProcess
from gateway.intake.registry import SchemaRegistry
from gateway.municipality import MunicipalityDirectory, RecipientResolver
from gateway.routing.config import GatewayConfig, load_config
from gateway.settings import SHIPPED_SCHEMAS
from gateway.store.blobs import BlobStore
from gateway.store.database import Database
from gateway.store.migrate import migrate
from gateway.store.states import WorkState
from gateway.store.store import Store
from gateway.store.tables import work_items
from gateway.worker import Worker


def _timed(runs: list[Callable[[], object]], min_seconds: float) -> list[float]:
    """Seconds per call of each ``run`` (each handles the whole document list), best of
    rounds. The runs take turns round by round, so that a noisy phase of the machine
    hits all of them alike instead of whichever happened to run then."""
    best = [float("inf")] * len(runs)
    spent = 0.0
    rounds = 0
    while spent < min_seconds * len(runs) or rounds < 3:
        for index, run in enumerate(runs):
            start = time.perf_counter()
            run()
            elapsed = time.perf_counter() - start
            best[index] = min(best[index], elapsed)
            spent += elapsed
        rounds += 1
    return best


def validation(
    seed: int, count: int = 1000, min_seconds: float = 2.0
) -> tuple[float, float, float]:
    """Documents/s through ``pipeline.check`` with and without the Schematron business
    rules, and through raw lxml parse + XMLSchema.validate (which checks no rules)."""
    registry = SchemaRegistry.load([SHIPPED_SCHEMAS])
    xsd_only = SchemaRegistry(dataclasses.replace(s, rules=()) for s in registry.sets)
    directory = MunicipalityDirectory.load(SHIPPED_SCHEMAS / "codelists" / "ags.tsv")
    config = load_config(REPO / "deploy" / "config")
    resolver = RecipientResolver(directory, config.recipients)
    docs = documents(seed, count)
    # The raw path gets its schema for free (picked before timing): what a user would
    # write for one known message type.
    schemas = [check(d, registry, resolver).schema_set.schema for d in docs]
    pairs = list(zip(docs, schemas, strict=True))
    parser = etree.XMLParser()

    def gateway() -> None:
        for doc in docs:
            check(doc, registry, resolver)

    def gateway_xsd_only() -> None:
        for doc in docs:
            check(doc, xsd_only, resolver)

    def raw() -> None:
        for doc, schema in pairs:
            if not schema.validate(etree.fromstring(doc, parser).getroottree()):
                raise AssertionError("sample is invalid")

    rules_s, xsd_s, lxml_s = _timed([gateway, gateway_xsd_only, raw], min_seconds)
    return count / rules_s, count / xsd_s, count / lxml_s


async def _preload(
    workdir: Path, seed: int, count: int, adjust: Callable[[Path], None] | None = None
) -> tuple[Store, GatewayConfig, int]:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    config_dir = workdir / "config"
    shutil.copytree(REPO / "deploy" / "config", config_dir)
    if adjust is not None:
        adjust(config_dir)
    config = load_config(config_dir)
    registry = SchemaRegistry.load([SHIPPED_SCHEMAS])
    directory = MunicipalityDirectory.load(SHIPPED_SCHEMAS / "codelists" / "ags.tsv")
    store = Store(Database.open(f"sqlite:///{workdir / 'gateway.db'}"))
    await migrate(store.db)
    acceptor = Acceptor(InProcess(registry), directory, config, store, WorkState.READY)
    news = [await acceptor.prepare(Incoming(doc, "efa-portal")) for doc in documents(seed, count)]
    # Loaded in one transaction: the scenario measures delivery, not accept.
    now = time.time()
    batch = [(new, WorkState.READY) for new in news]
    await store.db.write(lambda conn: store._insert(conn, batch, now))
    return store, config, sum(len(n.deliveries) for n in news)


async def _remaining(store: Store) -> int:
    query = select(func.count()).select_from(work_items)
    return int(await store.db.read(lambda conn: conn.execute(query).scalar_one()))


async def delivery(
    workdir: Path,
    seed: int,
    count: int,
    concurrency: int = 16,
    adjust: Callable[[Path], None] | None = None,
) -> float:
    """Deliveries/s through the worker (default config: file drop with fsync, as shipped)."""
    store, config, total = await _preload(workdir, seed, count, adjust)
    broker = EmbeddedQueue(store.db)
    worker = Worker(
        store,
        broker,
        BlobStore(workdir / "blobs"),
        lambda: config,
        concurrency=concurrency,
        poll_seconds=0.05,
    )
    start = time.perf_counter()
    task = asyncio.create_task(worker.run())
    while await _remaining(store):
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    worker.stop()
    await task
    await store.close()
    await store.db.close()
    return total / elapsed


async def consume_ack(workdir: Path, seed: int, count: int, concurrency: int = 16) -> float:
    """Raw embedded-queue rate: claim up to ``concurrency`` items, ack each, no adapter."""
    store, _config, total = await _preload(workdir, seed, count)
    broker = EmbeddedQueue(store.db)
    start = time.perf_counter()
    done = 0
    while leases := await broker.receive(concurrency, wait=0):
        for lease in leases:
            await broker.ack(lease)
        done += len(leases)
    elapsed = time.perf_counter() - start
    await store.close()
    await store.db.close()
    assert done == total, (done, total)
    return total / elapsed
