"""Retention and erasure against a running gateway over real HTTP, on SQLite (``serve``)
and on PostgreSQL (``api`` + ``worker`` with RabbitMQ): the payload goes, the evidence
stays."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

from tests.conftest import sample
from tests.support.deployments import (
    ADMIN,
    KOELN,
    SENDER,
    STUTTGART,
    Deployment,
    embedded,
    erased,
    pdf,
    scaled,
    settled,
    wait_for,
    write_config,
)
from tests.support.messages import with_new_uuid

pytestmark = pytest.mark.slow

# Delivered: erased at once; dead: kept (a replay still needs it).
RETENTION = "retention:\n  default: {payload_days: 0, dead_payload_days: 1000}\n"
FAST = {"XOEV_GATEWAY_RETENTION_INTERVAL_SECONDS": "0.3"}


def submit(client: httpx.Client, xml: bytes, attachment: bytes | None = None) -> str:
    if attachment is None:
        resp = client.post(
            "/v1/submissions", content=xml, headers={**SENDER, "Content-Type": "application/xml"}
        )
    else:
        resp = client.post(
            "/v1/submissions",
            files={
                "message": ("message.xml", xml, "application/xml"),
                "anlage": ("bauplan.pdf", attachment, "application/pdf"),
            },
            headers=SENDER,
        )
    assert resp.status_code == 202, resp.text
    return str(resp.headers["location"])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
async def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Deployment]:
    config = write_config(tmp_path / "config", RETENTION)
    running: AbstractAsyncContextManager[Deployment]
    if request.param == "sqlite":
        running = embedded(tmp_path, config, **FAST)
    else:
        running = scaled(tmp_path, config, request.getfixturevalue("amqp_url"), **FAST)
    async with running as deployment:
        yield deployment


async def test_payload_erased_after_delivery_evidence_kept_dead_kept_until_erased(
    deployment: Deployment,
) -> None:
    _, xml = with_new_uuid(sample(KOELN))
    attachment = pdf()
    with httpx.Client(base_url=deployment.url, timeout=30) as client:
        location = submit(client, xml, attachment)
        dead_location = submit(client, with_new_uuid(sample(STUTTGART))[1])

        view = wait_for(client, location, lambda v: settled(v) and erased(v))
        assert view["status"] == "delivered"
        # The evidence: ids, hashes, sizes, times, the whole event log.
        assert view["xml_sha256"] == hashlib.sha256(xml).hexdigest()
        (kept,) = view["attachments"]
        assert kept["sha256"] == hashlib.sha256(attachment).hexdigest()
        assert kept["size"] == len(attachment)
        kinds = [e["kind"] for e in view["events"]]
        assert kinds == ["accepted", "delivery.attempt", "delivery.delivered", "payload.erased"]
        assert view["events"][-1]["detail"]["reason"] == "retention"
        # The payload: gone from the database and from the blob store.
        assert await deployment.payload(view["id"]) is None
        assert deployment.blob_files == []
        # The sender sees that it was erased, too.
        assert erased(client.get(location, headers=SENDER).json())

        dead = wait_for(client, dead_location, settled)
        assert dead["status"] == "dead"
        time.sleep(1.0)  # a few retention runs: dead payloads have their own, longer period
        dead = client.get(dead_location, headers=ADMIN).json()
        assert not erased(dead)
        assert await deployment.payload(dead["id"]) is not None

        # Erasure on request (GDPR Art. 17): admins only.
        url = f"/v1/admin/submissions/{dead['id']}/erase"
        assert client.post(url, headers=SENDER).status_code == 403
        answer = client.post(url, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        assert answer.json()["already_erased"] is False
        assert client.post(url, headers=ADMIN).json()["already_erased"] is True
        assert await deployment.payload(dead["id"]) is None
        dead = client.get(dead_location, headers=ADMIN).json()
        assert [e for e in dead["events"] if e["kind"] == "payload.erased"][0]["detail"][
            "reason"
        ] == "request"

        # A replay of an erased submission's delivery fails for good, saying why.
        replay = client.post(
            "/v1/admin/dead-letters/replay",
            json={"delivery_ids": [dead["deliveries"][0]["id"]]},
            headers=ADMIN,
        )
        assert replay.status_code == 200, replay.text
        replayed = wait_for(
            client,
            dead_location,
            lambda v: [e["kind"] for e in v["events"]].count("delivery.dead") == 2,
        )
        assert replayed["status"] == "dead"
        assert "payload was erased" in replayed["deliveries"][0]["problem"]
        assert client.post("/v1/admin/submissions/unknown/erase", headers=ADMIN).status_code == 404


async def test_cli_dry_run_shows_then_run_erases_and_shared_blobs_stay_while_referenced(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path / "config", RETENTION)
    attachment = pdf(64 * 1024)
    # No retention job in the server: the CLI does it.
    async with embedded(tmp_path, config, XOEV_GATEWAY_RETENTION_INTERVAL_SECONDS="0") as gw:
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            first = submit(client, with_new_uuid(sample(KOELN))[1], attachment)
            second = submit(client, with_new_uuid(sample(KOELN))[1], attachment)
            one = wait_for(client, first, settled)
            two = wait_for(client, second, settled)
            assert len(gw.blob_files) == 1  # content-addressed: one blob for both

            dry = gw.cli("retention", "run", "--dry-run")
            assert dry.returncode == 0, dry.stderr
            assert f"would erase\t{one['id']}\tdelivered" in dry.stdout
            assert f"would erase\t{two['id']}\tdelivered" in dry.stdout
            assert not erased(client.get(first, headers=ADMIN).json())
            assert await gw.payload(one["id"]) is not None

            # Erasing one keeps the blob the other one still references.
            by_hand = gw.cli("erase", one["id"], "--by", "datenschutz@example")
            assert by_hand.returncode == 0, by_hand.stderr
            assert f"{one['id']}\terased at" in by_hand.stdout
            assert len(gw.blob_files) == 1
            assert await gw.payload(one["id"]) is None
            event = client.get(first, headers=ADMIN).json()["events"][-1]
            assert event["kind"] == "payload.erased"
            assert event["detail"] == {
                "reason": "request",
                "by": "datenschutz@example",
                "attachments": 1,
            }

            run = gw.cli("retention", "run")
            assert run.returncode == 0, run.stderr
            assert f"erased\t{two['id']}" in run.stdout and one["id"] not in run.stdout
            assert erased(client.get(second, headers=ADMIN).json())
            assert gw.blob_files == []

            missing = gw.cli("erase", "no-such-submission")
            assert missing.returncode == 4
            assert missing.stderr.strip() == "error: no submission no-such-submission"
