"""The public demo tokens: ``serve``/``api`` refuse them unless demo mode is explicitly on,
a reload cannot bring them in, ``config check`` warns about them and refuses guessable
tokens."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import DEMO_SENDER_TOKEN
from tests.support.access import ADMIN, access_gateway
from tests.support.gateway_process import REPO, free_port, gateway_env

pytestmark = pytest.mark.slow

EXAMPLE = REPO / "deploy" / "config"


def run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize("command", ["serve", "api"])
def test_servers_refuse_the_demo_tokens_outside_demo_mode(tmp_path: Path, command: str) -> None:
    env = gateway_env(tmp_path / "data", EXAMPLE, XOEV_GATEWAY_DEMO="false")
    result = run(env, command, "--host", "127.0.0.1", "--port", str(free_port()))
    assert result.returncode == 6, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: admins.admin, senders.efa-portal use a public demo token")
    assert "--demo" in last and "XOEV_GATEWAY_DEMO=true" in last and "token new" in last


def test_without_a_configuration_the_shipped_example_needs_demo_mode(tmp_path: Path) -> None:
    env = gateway_env(tmp_path / "data", EXAMPLE, XOEV_GATEWAY_DEMO="false")
    del env["XOEV_GATEWAY_CONFIG_DIR"]
    result = run(env, "serve", "--host", "127.0.0.1", "--port", str(free_port()))
    assert result.returncode == 6 and "public demo token" in result.stderr


def test_demo_mode_by_flag_accepts_the_demo_tokens(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(EXAMPLE, config)
    env = gateway_env(tmp_path / "data", config, XOEV_GATEWAY_DEMO="false")
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
        resp = httpx.post(
            f"http://127.0.0.1:{port}/v1/submissions",
            content=(
                REPO / "schemas/samples/hundesteuer/valid/anmeldung-stuttgart.xml"
            ).read_bytes(),
            headers={
                "Authorization": f"Bearer {DEMO_SENDER_TOKEN}",
                "Content-Type": "application/xml",
            },
            timeout=30,
        )
        assert resp.status_code == 202, resp.text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_a_reload_cannot_bring_in_the_demo_tokens(tmp_path_factory: pytest.TempPathFactory) -> None:
    with access_gateway(tmp_path_factory.mktemp("reload")) as gw:
        own = (gw.config_dir / "senders.yaml").read_text()
        shutil.copy(EXAMPLE / "senders.yaml", gw.config_dir / "senders.yaml")
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            resp = client.post("/v1/admin/config/reload", headers=gw.auth(ADMIN))
            assert resp.status_code == 422, resp.text
            assert "public demo token" in resp.json()["detail"]
            # The running configuration stays: its tokens work, the demo tokens do not.
            demo = {"Authorization": f"Bearer {DEMO_SENDER_TOKEN}"}
            assert client.get("/v1/admin/audit", headers=demo).status_code == 401
            assert client.get("/v1/admin/audit", headers=gw.auth(ADMIN)).status_code == 200
        (gw.config_dir / "senders.yaml").write_text(own)


def test_config_check_warns_about_demo_tokens_and_refuses_guessable_ones(tmp_path: Path) -> None:
    env = gateway_env(tmp_path / "data", EXAMPLE)
    checked = run(env, "config", "check", "--config", str(EXAMPLE))
    assert checked.returncode == 0, checked.stderr
    assert "warning: admins.admin, senders.efa-portal use a public demo token" in checked.stderr

    config = tmp_path / "config"
    shutil.copytree(EXAMPLE, config)
    weak = hashlib.sha256(b"changeme").hexdigest()
    (config / "senders.yaml").write_text(
        "senders:\n"
        "  portal:\n"
        "    services: ['*']\n"
        "    regions: ['*']\n"
        f"    token_sha256: '{weak}'\n"
    )
    refused = run(env, "config", "check", "--config", str(config))
    assert refused.returncode == 6
    assert refused.stderr.strip() == (
        f"error: {config / 'senders.yaml'}:5: senders.portal.token_sha256: the hash of a "
        "well-known token, which anyone can reverse; generate one with 'xoev-gateway token new'"
    )
