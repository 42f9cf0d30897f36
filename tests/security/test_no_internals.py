"""A sender's view of its submissions shows no server paths and no Fachverfahren or
exception texts; an administrator's view shows all of it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import sample
from tests.support.deployments import (
    ADMIN,
    KOELN,
    SENDER,
    STUTTGART,
    embedded,
    settled,
    wait_for,
    write_config,
)
from tests.support.messages import with_new_uuid

pytestmark = pytest.mark.slow

XML = {**SENDER, "Content-Type": "application/xml"}


async def test_sender_sees_states_not_paths_or_errors_admin_sees_everything(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path / "config", "retention: {}\n")
    async with embedded(tmp_path, config) as gw:
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            ok = client.post(
                "/v1/submissions", content=with_new_uuid(sample(KOELN))[1], headers=XML
            )
            bad = client.post(
                "/v1/submissions", content=with_new_uuid(sample(STUTTGART))[1], headers=XML
            )
            assert ok.status_code == bad.status_code == 202
            delivered = wait_for(client, ok.headers["location"], settled, headers=SENDER)
            dead = wait_for(client, bad.headers["location"], settled, headers=SENDER)
            admin_delivered = client.get(ok.headers["location"], headers=ADMIN).json()
            admin_dead = client.get(f"/v1/admin/submissions/{dead['id']}", headers=ADMIN)
            assert admin_dead.status_code == 200
            assert (
                client.get(f"/v1/admin/submissions/{dead['id']}", headers=SENDER).status_code == 403
            )

    server_path = str(tmp_path)
    for view in (delivered, dead):
        shown = json.dumps(view)
        assert server_path not in shown
        for internal in ("written to", "Errno", "Not a directory", "cannot create", '"sender"'):
            assert internal not in shown, (internal, shown)

    (d,) = delivered["deliveries"]
    assert d["state"] == "delivered" and d["receipt_reference"] == f"{d['id']}.xml"
    assert set(d) == {
        "id",
        "destination",
        "state",
        "attempts",
        "receipt_reference",
        "problem",
        "updated_at",
    }
    (x,) = dead["deliveries"]
    assert x["state"] == "dead"
    assert x["problem"] == "delivery failed; the operator has the details"
    assert [e["kind"] for e in dead["events"]] == ["accepted", "delivery.attempt", "delivery.dead"]
    assert dead["events"][-1]["detail"] == {}

    # Administrators get the full detail, paths and errors included.
    assert server_path in admin_delivered["deliveries"][0]["receipt_message"]
    assert admin_delivered["sender"] == "efa-portal"
    problem = admin_dead.json()["deliveries"][0]["problem"]
    assert "cannot create" in problem and server_path in problem
    assert server_path in admin_dead.json()["events"][-1]["detail"]["problem"]
