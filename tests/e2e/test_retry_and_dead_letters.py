"""Transient failures retry with growing delays; permanent ones die and replay after the fix."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import DEMO_ADMIN_TOKEN, DEMO_SENDER_TOKEN
from tests.support.gateway_process import GatewayProcess, gateway_env
from tests.support.messages import fresh

XML = {"Authorization": f"Bearer {DEMO_SENDER_TOKEN}", "Content-Type": "application/xml"}
ADMIN = {"Authorization": f"Bearer {DEMO_ADMIN_TOKEN}"}


def settle(client: httpx.Client, location: str, until: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        # The operator's view: problems in full (a sender sees them only in general terms).
        admin_view = location.replace("/v1/submissions/", "/v1/admin/submissions/")
        view: dict[str, Any] = client.get(admin_view, headers=ADMIN).json()
        if view["deliveries"][0]["state"] == until:
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.05)


def dead_letters(client: httpx.Client, timeout: float = 10) -> list[dict[str, Any]]:
    """The dead letters, once there are any: the worker records the delivery as dead in the
    store first and dead-letters its queue item right after, so a delivery can show
    ``dead`` a moment before its letter is listed (seen on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        letters: list[dict[str, Any]] = client.get("/v1/admin/dead-letters", headers=ADMIN).json()
        if letters or time.monotonic() > deadline:
            return letters
        time.sleep(0.05)


def test_transient_retries_back_off_then_deliver_and_permanent_dies_until_replayed(
    tmp_path: Path, config_dir: Path
) -> None:
    flaky_switch = tmp_path / "flaky-up"
    broken_switch = tmp_path / "broken-fixed"
    (config_dir / "faults.yaml").write_text(
        "destinations:\n"
        "  flaky:\n"
        "    adapter: tests.support.flaky_adapter:FlakyAdapter\n"
        f"    settings: {{switch: {flaky_switch}}}\n"
        "    backoff_base_seconds: 0.2\n"
        "    max_attempts: 20\n"
        "  broken:\n"
        "    adapter: tests.support.flaky_adapter:FlakyAdapter\n"
        f"    settings: {{switch: {broken_switch}, permanent: true}}\n"
        "routes:\n"
        "  - {municipality: '08221000', service: hundesteuer.anmeldung.0101, destinations: [flaky]}\n"
        "  - {municipality: '08311000', service: hundesteuer.anmeldung.0101, destinations: [broken]}\n"
    )
    env = gateway_env(tmp_path / "data", config_dir, XOEV_GATEWAY_POLL_SECONDS="0.05")
    gateway = GatewayProcess("serve", env, tmp_path / "serve.log")
    try:
        gateway.wait_ready()
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            heidelberg = fresh("hundesteuer/valid/anmeldung-stuttgart.xml").replace(
                b"ags:08111000", b"ags:08221000"
            )
            freiburg = fresh("hundesteuer/valid/anmeldung-stuttgart.xml").replace(
                b"ags:08111000", b"ags:08311000"
            )
            flaky = client.post("/v1/submissions", content=heidelberg, headers=XML).headers[
                "location"
            ]
            broken = client.post("/v1/submissions", content=freiburg, headers=XML).headers[
                "location"
            ]

            dead = settle(client, broken, "dead")
            assert dead["deliveries"][0]["attempts"] == 1
            assert "permanent: Fachverfahren refuses the case" in dead["deliveries"][0]["problem"]
            letters = dead_letters(client)
            assert [d["delivery_id"] for d in letters] == [dead["deliveries"][0]["id"]]

            time.sleep(2.0)  # let the flaky destination fail a few times
            flaky_switch.touch()
            recovered = settle(client, flaky, "delivered")
            broken_switch.touch()
            replay = client.post("/v1/admin/dead-letters/replay", json={}, headers=ADMIN).json()
            assert replay == {"replayed": [dead["deliveries"][0]["id"]]}
            replayed = settle(client, broken, "delivered")
    finally:
        gateway.stop()

    retries = [
        e["detail"]["delay_seconds"] for e in recovered["events"] if e["kind"] == "delivery.retry"
    ]
    assert len(retries) >= 3
    # Growth of the delays is checked exactly in tests/unit/test_backoff.py; here: every
    # retry waited at least half the base delay, and the attempts add up.
    assert min(retries) >= 0.1
    assert recovered["deliveries"][0]["attempts"] == len(retries) + 1
    kinds = [e["kind"] for e in replayed["events"]]
    assert kinds == [
        "accepted",
        "delivery.attempt",
        "delivery.dead",
        "delivery.replayed",
        "delivery.attempt",
        "delivery.delivered",
    ]
    assert json.dumps(replayed).count("permanent") >= 1
