"""Every admin action is in the audit log (who, what, target, when, outcome), readable
through ``GET /v1/admin/audit`` and ``xoev-gateway audit list``; refused attempts by an
authenticated sender too."""

from __future__ import annotations

import getpass
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.conftest import sample
from tests.support.access import ADMIN, access_gateway
from tests.support.gateway_process import REPO
from tests.support.messages import with_new_uuid

pytestmark = pytest.mark.slow


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_admin_actions_are_audited_and_readable(tmp_path_factory: pytest.TempPathFactory) -> None:
    started = time.time()
    with access_gateway(tmp_path_factory.mktemp("audit")) as gw:
        admin = gw.auth(ADMIN)
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            # A sender trying an admin endpoint: refused, and recorded under its name.
            assert (
                client.get("/v1/admin/dead-letters", headers=gw.auth("hund-bw")).status_code == 403
            )
            # Unauthenticated calls name nobody and are not recorded (anyone could fill it).
            assert client.post("/v1/admin/config/reload").status_code == 401

            reloaded = client.post("/v1/admin/config/reload", headers=admin)
            assert reloaded.status_code == 200
            broken = gw.config_dir / "broken.yaml"
            broken.write_text("senders:\n  x: {token_sha256: nope}\n")
            refused = client.post("/v1/admin/config/reload", headers=admin)
            assert refused.status_code == 422
            broken.unlink()

            xml = sample("hundesteuer/valid/anmeldung-stuttgart.xml")
            preview = client.post(
                "/v1/admin/mapping/preview", params={"municipality": "08111000"},
                content=xml, headers=admin,
            )  # fmt: skip
            assert preview.status_code == 200
            assert client.get("/v1/admin/dead-letters", headers=admin).status_code == 200
            replay = client.post(
                "/v1/admin/dead-letters/replay", json={"delivery_ids": ["d-1"]}, headers=admin
            )
            assert replay.json() == {"replayed": []}

            _, body = with_new_uuid(xml)
            location = client.post(
                "/v1/submissions", content=body, headers=gw.xml("hund-bw")
            ).headers["location"]
            submission_id = location.rsplit("/", 1)[1]
            assert client.get(location, headers=admin).status_code == 200
            erase = client.post(f"/v1/admin/submissions/{submission_id}/erase", headers=admin)
            assert erase.status_code == 200, erase.text
            unknown = client.post("/v1/admin/submissions/no-such-id/erase", headers=admin)
            assert unknown.status_code == 404

            # A reload by signal and a replay from the command line are audited as well.
            gw.process.proc.send_signal(signal.SIGHUP)
            replayed = cli(gw.env, "dead-letters", "replay")
            assert replayed.returncode == 0, replayed.stderr
            erased = cli(gw.env, "erase", submission_id)
            assert erased.returncode == 0, erased.stderr

            deadline = time.monotonic() + 15
            while True:
                entries: list[dict[str, Any]] = client.get(
                    "/v1/admin/audit", params={"limit": 1000}, headers=admin
                ).json()
                if any(e["actor"] == "signal:SIGHUP" for e in entries):
                    break
                assert time.monotonic() < deadline, entries
                time.sleep(0.1)
            only_reloads = client.get(
                "/v1/admin/audit", params={"action": "config.reload"}, headers=admin
            ).json()

    version = reloaded.json()["config_version"]
    seen = [(e["actor"], e["action"], e["target"], e["outcome"]) for e in reversed(entries)]
    assert seen[:9] == [
        ("sender:hund-bw", "GET /v1/admin/dead-letters", None, "refused"),
        ("admin:ops", "config.reload", version, "ok"),
        ("admin:ops", "config.reload", None, "failed"),
        ("admin:ops", "mapping.preview", "08111000", "ok"),
        ("admin:ops", "dead-letters.list", None, "ok"),
        ("admin:ops", "dead-letters.replay", "d-1", "ok"),
        ("admin:ops", "submission.read", submission_id, "ok"),
        ("admin:ops", "submission.erase", submission_id, "ok"),
        ("admin:ops", "submission.erase", "no-such-id", "refused"),
    ]
    # Then, in either order: the signal's reload, the command line's replay, and the
    # reads of the audit log while waiting for the signal's entry.
    later = Counter(seen[9:])
    assert later.pop(("signal:SIGHUP", "config.reload", version, "ok")) == 1
    assert later.pop((f"cli:{getpass.getuser()}", "dead-letters.replay", "*", "ok")) == 1
    assert later.pop((f"cli:{getpass.getuser()}", "submission.erase", submission_id, "ok")) == 1
    assert set(later) <= {("admin:ops", "audit.read", None, "ok")}
    by_action = {e["action"]: e for e in reversed(entries)}
    failed = next(e for e in entries if e["outcome"] == "failed")
    assert "broken.yaml" in failed["detail"]["error"]
    assert by_action["mapping.preview"]["detail"]["sha256"]
    assert by_action["dead-letters.replay"]["detail"] == {"replayed": []}
    erasures = [e["detail"] for e in reversed(entries) if e["action"] == "submission.erase"]
    assert erasures[0] == {"result": "erased"} and "no-such-id" in erasures[1]["error"]
    assert erasures[2] == {"result": "already erased"}
    assert all(started <= e["at"] <= time.time() for e in entries)
    assert {e["action"] for e in only_reloads} == {"config.reload"} and len(only_reloads) == 3

    # The command line reads the same log (the gateway is stopped; the database stays).
    listed = cli(gw.env, "audit", "list", "--json", "--limit", "1000")
    assert listed.returncode == 0, listed.stderr
    from_cli = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [e["id"] for e in from_cli][-len(entries) :] == [e["id"] for e in entries]
    newer = from_cli[: len(from_cli) - len(entries)]
    assert newer and all(e["action"] == "audit.read" for e in newer)
    table = cli(gw.env, "audit", "list", "--action", "config.reload")
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 3
    assert "\tsignal:SIGHUP\tconfig.reload\t" in table.stdout
