"""Which payloads retention erases, on SQLite and PostgreSQL: the most specific period wins
field by field, every delivery must be final and past its period, dead ones have their
own period, and two runs at once erase (and record) each payload once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.retention import Retention
from gateway.routing.config import GatewayConfig
from gateway.routing.policies import DAY, RetentionConfig, RetentionPeriod
from gateway.store.blobs import BlobStore
from gateway.store.records import NewDelivery, NewSubmission
from gateway.store.states import WorkState
from gateway.store.store import Store
from tests.contract.backends import STORES


@pytest.fixture(
    params=[
        pytest.param(name, marks=[pytest.mark.services] if services else [])
        for name, (_, services) in sorted(STORES.items())
    ]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    make_store, _ = STORES[request.param]
    async with make_store(tmp_path) as s:
        yield s


def submission(message_type: str, destinations: list[str]) -> NewSubmission:
    return NewSubmission(
        id=str(uuid.uuid4()),
        message_uuid=str(uuid.uuid4()),
        sender="portal",
        content_sha256="c" * 64,
        message_type=message_type,
        schema_set="s",
        municipality="08111000",
        recipient="ags:08111000",
        author=None,
        leika="99012345678901",
        config_version="v1",
        xml=b"<personal-data/>",
        deliveries=[NewDelivery(str(uuid.uuid4()), d, "filedrop") for d in destinations],
        xml_sha256="d" * 64,
    )


CONFIG = GatewayConfig(
    {},
    {},
    {},
    {},
    "v1",
    retention=RetentionConfig(
        default=RetentionPeriod(payload_days=30, dead_payload_days=90),
        services={
            "anmeldung": RetentionPeriod(payload_days=10),
            "99012345678901": RetentionPeriod(payload_days=20),  # LeiKa: after the type
        },
        destinations={"archiv": RetentionPeriod(payload_days=365)},
    ),
)


async def settle(store: Store, new: NewSubmission, states: list[str]) -> None:
    jobs = await store.jobs([d.id for d in new.deliveries])
    for delivery, state in zip(new.deliveries, states, strict=True):
        job = jobs[delivery.id]
        assert job is not None
        if state == "delivered":
            await store.record_delivered(job, "ref", "written to /srv/out")
        elif state == "dead":
            await store.record_dead(job, "permanent: refused")


async def test_periods_by_level_state_and_the_last_final_delivery(
    store: Store, tmp_path: Path
) -> None:
    retention = Retention(store, BlobStore(tmp_path / "blobs"), lambda: CONFIG, page_size=2)
    cases = {
        "by-type": (submission("anmeldung", ["kasse"]), ["delivered"]),  # 10 days
        "by-leika": (
            submission("abmeldung", ["kasse"]),
            ["delivered"],
        ),  # by its LeiKa key: 20 days
        "dead": (submission("anmeldung", ["kasse"]), ["dead"]),  # default dead: 90 days
        "archived": (submission("anmeldung", ["kasse", "archiv"]), ["delivered"] * 2),  # 365
        "pending": (submission("anmeldung", ["kasse", "steuer"]), ["delivered", "pending"]),
    }
    for new, states in cases.values():
        await store.accept(new, WorkState.READY)
        await settle(store, new, states)
    ids = {name: new.id for name, (new, _) in cases.items()}
    names = {v: k for k, v in ids.items()}

    async def due_after(days: float) -> list[str]:
        return sorted(names[d.submission_id] for d in await retention.due(time.time() + days * DAY))

    assert await due_after(9) == []
    assert await due_after(11) == ["by-type"]
    assert await due_after(21) == ["by-leika", "by-type"]
    assert await due_after(91) == ["by-leika", "by-type", "dead"]
    assert await due_after(366) == ["archived", "by-leika", "by-type", "dead"]

    report = await retention.run(now=time.time() + 21 * DAY)
    assert sorted(names[i] for i in report.erased) == ["by-leika", "by-type"]
    view = await store.submission(ids["by-type"])
    assert view.payload_erased_at is not None and view.xml_sha256 == "d" * 64
    assert [e.kind for e in view.events][-1] == "payload.erased"
    assert (await store.job(view.deliveries[0].id)).xml is None  # type: ignore[union-attr]
    kept = await store.job((await store.submission(ids["dead"])).deliveries[0].id)
    assert kept is not None and kept.xml == b"<personal-data/>"


async def test_concurrent_erasures_erase_and_record_once(store: Store) -> None:
    new = submission("anmeldung", ["kasse"])
    await store.accept(new, WorkState.READY)
    results = await asyncio.gather(*(store.erase_payloads([new.id], "retention") for _ in range(4)))
    assert sorted(r[0].already for r in results) == [False, True, True, True]
    view = await store.submission(new.id)
    assert [e.kind for e in view.events].count("payload.erased") == 1
