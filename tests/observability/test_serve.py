"""Logs and metrics of a real ``serve`` process through the operator story: deliveries to a
working and to an unwritable destination, a rejection, a failed authentication, a replay,
a refused and an accepted reload, an erasure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.observability.conftest import PERSONAL, Story, samples

pytestmark = pytest.mark.slow


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
    # At INFO the accepted line carries the routing (submission.routed is a DEBUG line).
    assert accepted["destinations"] == ["broken"]
    assert accepted["delivery_ids"] == [story.dead["deliveries"][0]["id"]]
    assert _events(story, "submission.routed") == []


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
