"""Logs and metrics of a real ``serve`` process through the operator story: deliveries to a
working and to an unwritable destination, a rejection, a failed authentication, a replay,
a refused and an accepted reload, an erasure."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.observability.conftest import (
    ADMIN,
    ATTACHMENT_NAME,
    BAD_TOKEN,
    KOELN,
    PERSONAL,
    SENDER,
    STUTTGART,
    XML,
    marked_message,
    samples,
    wait_settled,
)
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.slow


@dataclass
class Story:
    delivered: dict[str, Any]
    dead: dict[str, Any]
    config_version: str
    reloaded_version: str
    log: Path
    metrics: str


def _post(client: httpx.Client, recipient: str) -> httpx.Response:
    files = [
        (
            "message",
            ("antrag.xml", marked_message(str(uuid.uuid4()), recipient), "application/xml"),
        ),
        ("attachment", (ATTACHMENT_NAME, b"%PDF-1.4 contract", "application/pdf")),
    ]
    resp = client.post("/v1/submissions", files=files, headers=SENDER)
    assert resp.status_code == 202, resp.text
    return resp


def _wait_log(log: Path, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"no {text!r} in the log"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def story(serve: GatewayProcess, workdir: Path) -> Story:
    routes = workdir / "config" / "routes.yaml"
    with httpx.Client(base_url=serve.url, timeout=30) as client:
        version = client.get("/readyz").json()["config_version"]
        delivered = wait_settled(client, _post(client, KOELN).headers["location"])
        dead = wait_settled(client, _post(client, STUTTGART).headers["location"])
        invalid = marked_message(
            str(uuid.uuid4()),
            KOELN,
            **{
                "<xgb:postleitzahl>70197</xgb:postleitzahl>": "<xgb:postleitzahl>Qxplzmarker</xgb:postleitzahl>"
            },
        )
        rejected = client.post("/v1/submissions", content=invalid, headers=XML)
        assert rejected.status_code == 422, rejected.text
        assert "Qxplzmarker" in rejected.text  # the sender is told; the log is not
        refused = client.post(
            "/v1/submissions",
            content=invalid,
            headers={"Authorization": f"Bearer {BAD_TOKEN}", "Content-Type": "application/xml"},
        )
        assert refused.status_code == 401
        replay = client.post("/v1/admin/dead-letters/replay", json={}, headers=ADMIN)
        assert replay.json()["replayed"] == [dead["deliveries"][0]["id"]]
        _wait_log(serve.log, '"event": "delivery.replayed"')
        wait_settled(client, f"/v1/admin/submissions/{dead['id']}")
        good = routes.read_text()
        routes.write_text(good + "  - {municipality: '05315000', destinations: [nowhere]}\n")
        assert client.post("/v1/admin/config/reload", headers=ADMIN).status_code == 422
        routes.write_text(good + "# reloaded\n")
        reloaded = client.post("/v1/admin/config/reload", headers=ADMIN)
        assert reloaded.status_code == 200, reloaded.text
        erased = client.post(f"/v1/admin/submissions/{delivered['id']}/erase", headers=ADMIN)
        assert erased.status_code == 200, erased.text
        time.sleep(5.5)  # past the scrape cache: the gauges show the replayed dead letter
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
    return Story(
        delivered, dead, version, reloaded.json()["config_version"], serve.log, metrics.text
    )


def _lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in log.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {raw!r}")
    return lines


def _events(story: Story, event: str) -> list[dict[str, Any]]:
    return [line for line in _lines(story.log) if line.get("event") == event]


def test_every_line_is_one_json_object_with_time_level_and_logger(story: Story) -> None:
    lines = _lines(story.log)
    assert len(lines) > 10
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= line.keys(), line
        assert line["ts"].endswith("Z")
    assert any(line["logger"] == "uvicorn.error" for line in lines)  # uvicorn's lines too


def test_no_personal_data_and_no_secret_in_any_log_line(story: Story) -> None:
    text = story.log.read_text()
    leaked = [marker for marker in PERSONAL if marker in text]
    assert leaked == [], f"personal data or secrets in the log: {leaked}"
    # ... while the submissions did pass through (the markers were there to leak).
    assert story.delivered["id"] in text and story.dead["id"] in text


def test_accepted_and_routed_carry_the_submission_ids(story: Story) -> None:
    (accepted,) = [
        e for e in _events(story, "submission.accepted") if e["submission_id"] == story.dead["id"]
    ]
    assert accepted["municipality"] == "08111000"
    assert accepted["service"] == "hundesteuer.anmeldung.0101"
    assert accepted["config_version"] == story.config_version
    assert accepted["source"] == "api" and accepted["sender"]
    assert accepted["message_uuid"] == story.dead["message_uuid"]
    (routed,) = [
        e
        for e in _events(story, "submission.routed")
        if e["message_uuid"] == accepted["message_uuid"]
    ]
    assert routed["destinations"] == ["broken"]
    assert routed["delivery_ids"] == [story.dead["deliveries"][0]["id"]]


def test_rejection_names_the_problem_type_and_auth_failure_the_request(story: Story) -> None:
    (rejected,) = _events(story, "submission.rejected")
    assert rejected["problem"] == "invalid-message"
    assert rejected["status"] == 422
    assert rejected["level"] == "info"
    (failed,) = _events(story, "auth.failed")
    assert failed["path"] == "/v1/submissions" and failed["client"] == "127.0.0.1"
    assert failed["level"] == "warning"


def test_delivery_steps_carry_delivery_destination_and_config_version(story: Story) -> None:
    delivery_id = story.delivered["deliveries"][0]["id"]
    attempt = [e for e in _events(story, "delivery.attempt") if e["delivery_id"] == delivery_id]
    (delivered,) = _events(story, "delivery.delivered")
    for line in (attempt[0], delivered):
        assert line["submission_id"] == story.delivered["id"]
        assert line["message_uuid"] == story.delivered["message_uuid"]
        assert line["destination"] == "archive" and line["municipality"] == "05315000"
        assert line["config_version"] == story.config_version
        assert line["adapter"] == "filedrop" and line["attempt"] == 1
    dead = _events(story, "delivery.dead")
    assert len(dead) == 2  # once, and again after the replay (still unwritable)
    dead_id = story.dead["deliveries"][0]["id"]
    assert {d["delivery_id"] for d in dead} == {dead_id}
    assert dead[0]["destination"] == "broken" and dead[0]["level"] == "error"
    assert dead[0]["cause"] == "permanent"
    # What the operator needs: the adapter's own words (the directory cannot be created).
    assert "blocker/broken" in dead[0]["reason"] and "Not a directory" in dead[0]["reason"]
    (replayed,) = _events(story, "delivery.replayed")
    assert replayed["delivery_id"] == dead_id and replayed["destination"] == "broken"


def test_reload_refused_and_reloaded_and_erasure_are_logged(story: Story) -> None:
    (refused,) = _events(story, "config.refused")
    assert refused["level"] == "error" and refused["config_version"] == story.config_version
    assert "routes.yaml" in refused["msg"]  # file (and line) of the refused config
    (reloaded,) = _events(story, "config.reloaded")
    assert reloaded["config_version"] == story.reloaded_version != story.config_version
    (erased,) = _events(story, "payload.erased")
    assert erased["submission_id"] == story.delivered["id"] and erased["why"] == "request"


def test_access_log_when_switched_on(story: Story) -> None:
    access = [line for line in _lines(story.log) if line["logger"] == "uvicorn.access"]
    posts = [line for line in access if line["path"] == "/v1/submissions"]
    assert [(p["method"], p["status"]) for p in posts] == [
        ("POST", 202),
        ("POST", 202),
        ("POST", 422),
        ("POST", 401),
    ]
    assert all("authorization" not in json.dumps(line).lower() for line in access)


def test_metrics_of_serve_after_the_story(story: Story) -> None:
    got = samples(story.metrics)
    service = 'service="hundesteuer.anmeldung.0101"'
    assert got[f'xoev_gateway_submissions_accepted_total{{{service},source="api"}}'] == 2
    rejected = [k for k in got if k.startswith("xoev_gateway_submissions_rejected_total{")]
    assert rejected == [
        'xoev_gateway_submissions_rejected_total{problem="invalid-message",source="api"}'
    ]
    assert got['xoev_gateway_deliveries_total{destination="archive",outcome="delivered"}'] == 1
    assert got['xoev_gateway_deliveries_total{destination="broken",outcome="dead"}'] == 2
    assert got['xoev_gateway_delivery_attempt_seconds_count{adapter="filedrop"}'] == 3
    assert got['xoev_gateway_intake_seconds_count{source="api"}'] == 2
    assert got['xoev_gateway_dead_letters{destination="broken"}'] == 1
    assert got['xoev_gateway_dead_letters{destination="archive"}'] == 0
    assert got['xoev_gateway_queue_depth{destination="archive"}'] == 0
    assert got['xoev_gateway_queue_oldest_age_seconds{destination="broken"}'] == 0
    assert got[f'xoev_gateway_config_info{{version="{story.reloaded_version}"}}'] == 1
    assert not any(
        k.startswith("xoev_gateway_config_info{") and story.config_version in k for k in got
    )
    assert got['xoev_gateway_config_reloads_total{outcome="refused"}'] == 1
    assert got['xoev_gateway_config_reloads_total{outcome="loaded"}'] == 1
    assert got["xoev_gateway_auth_failures_total"] == 1
    assert got["xoev_gateway_replayed_total"] == 1
    assert got['xoev_gateway_payloads_erased_total{why="request"}'] == 1
    assert got["xoev_gateway_ready"] == 1
