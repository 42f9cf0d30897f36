"""Over real HTTP against a real ``xoev-gateway serve`` process."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import DEMO_ADMIN_TOKEN, DEMO_SENDER_TOKEN, sample
from tests.support.gateway_process import GatewayProcess

SENDER = {"Authorization": f"Bearer {DEMO_SENDER_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {DEMO_ADMIN_TOKEN}"}
XML = {**SENDER, "Content-Type": "application/xml"}


def wait_settled(
    client: httpx.Client, location: str, headers: dict[str, str], timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = client.get(location, headers=headers).json()
        if all(d["state"] != "pending" for d in view["deliveries"]) or time.monotonic() > deadline:
            return view
        time.sleep(0.1)


def test_two_municipalities_are_delivered_to_their_own_destinations(
    gateway: GatewayProcess, config_dir: Path
) -> None:
    out = config_dir.parent / "out"
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        stuttgart = client.post(
            "/v1/submissions",
            content=sample("hundesteuer/valid/anmeldung-stuttgart.xml"),
            headers=XML,
        )
        koeln = client.post(
            "/v1/submissions", content=sample("hundesteuer/valid/anmeldung-koeln.xml"), headers=XML
        )
        assert stuttgart.status_code == 202, stuttgart.text
        assert koeln.status_code == 202, koeln.text
        assert stuttgart.headers["location"] == stuttgart.json()["links"]["self"]
        s_view = wait_settled(client, stuttgart.headers["location"], SENDER)
        k_view = wait_settled(client, koeln.headers["location"], SENDER)

    assert s_view["status"] == "delivered"
    assert s_view["recipient"] == {
        "kennung": "ags:08111000",
        "municipality": "08111000",
        "source": "message",
    }
    (s_delivery,) = s_view["deliveries"]
    assert s_delivery["destination"] == "stuttgart-steueramt"
    assert [e["kind"] for e in s_view["events"]] == [
        "accepted",
        "delivery.attempt",
        "delivery.delivered",
    ]

    assert sorted(d["destination"] for d in k_view["deliveries"]) == [
        "koeln-archiv",
        "koeln-steuer",
    ]
    for delivery in [s_delivery, *k_view["deliveries"]]:
        folder = out / delivery["destination"]
        xml = (folder / f"{delivery['id']}.xml").read_bytes()
        meta = json.loads((folder / f"{delivery['id']}.json").read_text())
        assert meta["delivery_id"] == delivery["id"]
        assert xml.startswith(b"<?xml")
    assert list((out / "stuttgart-steueramt").glob("*.xml")) == [
        out / "stuttgart-steueramt" / f"{s_delivery['id']}.xml"
    ]
    assert not (out / "bw-hundesteuer").exists()


def test_same_message_again_returns_first_answer_and_other_content_conflicts(
    gateway: GatewayProcess,
) -> None:
    body = sample("hundesteuer/valid/anmeldung-muenchen.xml")
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        first = client.post("/v1/submissions", content=body, headers=XML)
        again = client.post("/v1/submissions", content=body, headers=XML)
        changed = client.post(
            "/v1/submissions", content=body.replace(b"</hs:", b" </hs:", 1), headers=XML
        )
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    # The answer says it is the same submission, so that retry logic can tell.
    assert first.json()["status"] == "accepted" and again.json()["status"] == "duplicate"
    assert changed.status_code == 409
    assert changed.headers["content-type"] == "application/problem+json"
    assert changed.json()["type"].endswith("/duplicate-conflict")


def test_status_timestamps_are_rfc3339(gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        answer = client.post(
            "/v1/submissions", content=sample("hundesteuer/valid/anmeldung-koeln.xml"), headers=XML
        )
        view = wait_settled(client, answer.headers["location"], XML)
    stamps = [view["received_at"], *(e["at"] for e in view["events"])]
    stamps += [d["updated_at"] for d in view["deliveries"]]
    for stamp in stamps:
        assert isinstance(stamp, str) and stamp.endswith("+00:00"), stamp
        assert datetime.fromisoformat(stamp).tzinfo is not None


def test_multipart_attachments_are_stored_hashed_and_delivered(
    gateway: GatewayProcess, config_dir: Path
) -> None:
    plan = b"%PDF-1.4 " + bytes(range(256)) * 4000
    files = [
        (
            "message",
            ("antrag.xml", sample("hundesteuer/valid/anmeldung-nuertingen.xml"), "application/xml"),
        ),
        ("attachment", ("Kaufvertrag.pdf", plan, "application/pdf")),
        ("attachment", ("foto.jpg", b"\xff\xd8\xff jpeg", "image/jpeg")),
    ]
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        resp = client.post("/v1/submissions", files=files, headers=SENDER)
        assert resp.status_code == 202, resp.text
        view = wait_settled(client, resp.headers["location"], SENDER)
    assert [(a["name"], a["sha256"], a["size"]) for a in view["attachments"]] == [
        ("Kaufvertrag.pdf", hashlib.sha256(plan).hexdigest(), len(plan)),
        ("foto.jpg", hashlib.sha256(b"\xff\xd8\xff jpeg").hexdigest(), 8),
    ]
    (delivery,) = view["deliveries"]
    assert delivery["state"] == "delivered"
    folder = config_dir.parent / "out" / delivery["destination"] / f"{delivery['id']}.attachments"
    assert (folder / "1-Kaufvertrag.pdf").read_bytes() == plan


def test_only_the_submitting_sender_or_an_admin_reads_a_submission(
    gateway: GatewayProcess, config_dir: Path
) -> None:
    other = hashlib.sha256(b"other-token-long-enough-for-the-tests").hexdigest()
    # A second sender is configured by a new file; the running gateway reloads on request.
    (config_dir / "other.yaml").write_text(
        f"senders:\n  other-portal: {{token_sha256: '{other}', services: ['*'], regions: ['*']}}\n"
    )
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        assert client.post("/v1/admin/config/reload", headers=SENDER).status_code == 403
        assert client.post("/v1/admin/config/reload", headers=ADMIN).status_code == 200
        resp = client.post(
            "/v1/submissions", content=sample("bewohnerparken/valid/antrag-koeln.xml"), headers=XML
        )
        location = resp.headers["location"]
        assert client.get(location, headers=SENDER).status_code == 200
        assert client.get(location, headers=ADMIN).status_code == 200
        stranger = client.get(
            location, headers={"Authorization": "Bearer other-token-long-enough-for-the-tests"}
        )
        assert stranger.status_code == 404
        assert client.get(location).status_code == 401
        assert client.get(location, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.get("/v1/admin/dead-letters", headers=SENDER).status_code == 403


def test_invalid_messages_get_problem_details(gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        invalid = client.post(
            "/v1/submissions",
            content=sample("hundesteuer/invalid/bad-postleitzahl.xml"),
            headers=XML,
        )
        unknown = client.post(
            "/v1/submissions",
            content=sample("hundesteuer/invalid/unknown-recipient.xml"),
            headers=XML,
        )
        wrong_type = client.post(
            "/v1/submissions", content=b"{}", headers={**SENDER, "Content-Type": "application/json"}
        )
        unauthenticated = client.post(
            "/v1/submissions", content=b"<a/>", headers={"Content-Type": "application/xml"}
        )
    assert invalid.status_code == 422
    body = invalid.json()
    assert body["type"].endswith("/invalid-message")
    (error,) = body["errors"]
    assert (
        error["path"].endswith("xgb:postleitzahl")
        and error["line"] > 1
        and "7011" in error["message"]
    )
    assert unknown.status_code == 422 and "99999999" in unknown.json()["detail"]
    assert wrong_type.status_code == 415
    assert (
        unauthenticated.status_code == 401
        and unauthenticated.headers["www-authenticate"] == "Bearer"
    )


def test_no_route_is_a_clear_problem_and_stores_nothing(
    gateway: GatewayProcess, config_dir: Path
) -> None:
    # Take the Stuttgart sample and send it to Heidelberg: within the sender's regions
    # (Baden-Württemberg), but resident parking is routed only for Stuttgart and Esslingen.
    body = sample("bewohnerparken/valid/antrag-stuttgart.xml").replace(
        b"ags:08111000", b"ags:08221000"
    )
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        resp = client.post("/v1/submissions", content=body, headers=XML)
    assert resp.status_code == 422
    assert resp.json()["type"].endswith("/no-route")
    assert "08221000" in resp.json()["detail"]


def test_operations_endpoints(gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        assert client.get("/healthz").json() == {"status": "alive"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        client.post(
            "/v1/submissions",
            content=sample("hundesteuer/valid/abmeldung-muenchen.xml"),
            headers=XML,
        )
        assert "xoev_gateway_submissions_accepted_total" in client.get("/metrics").text
        spec = client.get("/openapi.json").json()
        assert spec["info"]["title"] == "xoev-gateway"
        # Served by a plain Starlette route, still documented by FastAPI's.
        submit = spec["paths"]["/v1/submissions"]["post"]
        assert set(submit["requestBody"]["content"]) == {
            "application/xml",
            "multipart/form-data",
            "application/zip",
        }
        assert "202" in submit["responses"]
