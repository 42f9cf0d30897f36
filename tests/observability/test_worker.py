"""A worker has no API: it serves ``/metrics`` on its own port (``XOEV_GATEWAY_METRICS_PORT``),
and logs readable text when told so (``XOEV_GATEWAY_LOG_FORMAT=text``)."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.observability.conftest import (
    KOELN,
    PERSONAL,
    STUTTGART,
    XML,
    marked_message,
    samples,
    wait_settled,
    write_config,
)
from tests.support.gateway_process import GatewayProcess, free_port, gateway_env

pytestmark = pytest.mark.slow

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) +\S+: ")


def test_worker_serves_metrics_on_its_own_port_and_logs_text(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    port = free_port()
    common = {"XOEV_GATEWAY_POLL_SECONDS": "0.2"}
    api_env = gateway_env(tmp_path / "data", config, **common, XOEV_GATEWAY_LOG_LEVEL="DEBUG")
    worker_env = gateway_env(
        tmp_path / "data",
        config,
        **common,
        XOEV_GATEWAY_METRICS_PORT=str(port),
        XOEV_GATEWAY_LOG_FORMAT="text",
    )
    with GatewayProcess("api", api_env, tmp_path / "api.log") as api:
        api.wait_ready()
        with GatewayProcess("worker", worker_env, tmp_path / "worker.log") as worker:
            worker.wait_ready()
            with httpx.Client(base_url=api.url, timeout=30) as client:
                ok = client.post(
                    "/v1/submissions", content=marked_message(str(uuid.uuid4()), KOELN), headers=XML
                )
                bad = client.post(
                    "/v1/submissions",
                    content=marked_message(str(uuid.uuid4()), STUTTGART),
                    headers=XML,
                )
                assert ok.status_code == bad.status_code == 202
                wait_settled(client, ok.headers["location"])
                dead = wait_settled(client, bad.headers["location"])
                api_metrics = samples(client.get("/metrics").text)
            time.sleep(0.2)
            got = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
            assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=10).status_code == 404

    # The worker counts what it delivered; the api what it accepted.
    assert got['xoev_gateway_deliveries_total{destination="archive",outcome="delivered"}'] == 1
    assert got['xoev_gateway_deliveries_total{destination="broken",outcome="dead"}'] == 1
    assert got['xoev_gateway_delivery_attempt_seconds_count{adapter="filedrop"}'] == 2
    assert got['xoev_gateway_dead_letters{destination="broken"}'] == 1
    assert got['xoev_gateway_queue_depth{destination="archive"}'] == 0
    assert got["xoev_gateway_ready"] == 1
    assert any(k.startswith("xoev_gateway_config_info{") for k in got)
    service = 'service="hundesteuer.anmeldung.0101",source="api"'
    assert api_metrics[f"xoev_gateway_submissions_accepted_total{{{service}}}"] == 2
    # Both processes read the same dead letter from the one store.
    assert api_metrics['xoev_gateway_dead_letters{destination="broken"}'] == 1

    text = (tmp_path / "worker.log").read_text()
    lines = text.splitlines()
    assert lines and all(TEXT_LINE.match(line) for line in lines if not line.startswith(" ")), text
    dead_id = dead["deliveries"][0]["id"]
    (dead_line,) = [line for line in lines if "event=delivery.dead" in line]
    assert f"delivery_id={dead_id}" in dead_line and "destination=broken" in dead_line
    assert " ERROR " in dead_line
    # DEBUG (the api here) adds the routing step as a line of its own.
    routed = [
        json.loads(line)
        for line in (tmp_path / "api.log").read_text().splitlines()
        if '"submission.routed"' in line
    ]
    assert [r["destinations"] for r in routed] == [["archive"], ["broken"]]
    for log in ("worker.log", "api.log"):
        content = (tmp_path / log).read_text()
        assert [m for m in PERSONAL if m in content] == [], log
