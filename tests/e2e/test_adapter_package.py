"""An adapter package from outside: pip-installed, it passes the contract kit, and the
gateway delivers through it by entry-point name with no change to the gateway."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import DEMO_SENDER_TOKEN, sample
from tests.e2e.test_http_end_to_end import SENDER, XML, wait_settled
from tests.support.gateway_process import REPO, GatewayProcess, gateway_env
from tests.support.servers import ReferenceFachverfahren, reference_fachverfahren

EXAMPLE = REPO / "examples" / "xoev-gateway-adapter-example"
PACKAGE = "xoev-gateway-adapter-example"

pytestmark = pytest.mark.slow


def pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # A copy: the build must not leave build/ or egg-info in the repository.
    source = tmp_path_factory.mktemp("src") / "example"
    subprocess.run(["cp", "-r", str(EXAMPLE), str(source)], check=True)
    # --no-deps / --no-build-isolation: everything it needs is installed already; no network.
    pip("install", "--no-deps", "--no-build-isolation", str(source))
    try:
        yield
    finally:
        pip("uninstall", "-y", PACKAGE)


def test_example_package_passes_its_own_contract_tests(installed_example: None) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "tests"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "10 passed" in result.stdout


@pytest.fixture
def fv(tmp_path: Path) -> Iterator[ReferenceFachverfahren]:
    with reference_fachverfahren(tmp_path / "fv") as started:
        yield started


def test_gateway_delivers_through_the_installed_package_by_name(
    installed_example: None, tmp_path: Path, fv: ReferenceFachverfahren
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "senders.yaml").write_text((REPO / "deploy/config/senders.yaml").read_text())
    (config / "routes.yaml").write_text(
        "destinations:\n"
        "  stuttgart-aktenablage:\n"
        "    adapter: example-aktenablage\n"
        f"    settings: {{base_url: '{fv.url}', ablage: Hundesteuer}}\n"
        "  stuttgart-rest:\n"
        "    adapter: http\n"
        f"    settings: {{url: '{fv.url}/cases', body: xml}}\n"
        "routes:\n"
        "  - {municipality: '08111000', service: '*', "
        "destinations: [stuttgart-aktenablage, stuttgart-rest]}\n"
    )
    env = gateway_env(tmp_path / "data", config, XOEV_GATEWAY_POLL_SECONDS="0.2")
    gateway = GatewayProcess("serve", env, tmp_path / "serve.log")
    try:
        gateway.wait_ready()
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            resp = client.post(
                "/v1/submissions",
                content=sample("hundesteuer/valid/anmeldung-stuttgart.xml"),
                headers=XML,
            )
            assert resp.status_code == 202, resp.text
            view = wait_settled(client, resp.headers["location"], SENDER)
    finally:
        gateway.stop()
    deliveries = {d["destination"]: d for d in view["deliveries"]}
    assert {d["state"] for d in deliveries.values()} == {"delivered"}, view
    cases = {c["idempotency_key"]: c for c in fv.cases()}
    assert len(cases) == 2
    for delivery in deliveries.values():
        assert cases[delivery["id"]]["case_number"] == delivery["receipt_reference"]
    filed = json.loads(cases[deliveries["stuttgart-aktenablage"]["id"]]["body"])
    assert filed["ablage"] == "Hundesteuer" and "Weidmann" in filed["antrag_xml"]
    assert DEMO_SENDER_TOKEN not in (tmp_path / "serve.log").read_text()
