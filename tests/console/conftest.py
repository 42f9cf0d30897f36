"""The admin console in a real browser: Debian's chromium, driven by Playwright's Python
package through ``executable_path`` (Playwright's own browser downloads are never used:
``playwright install`` needs a network this project does not have).

One ``serve`` process per module with the example configuration plus a destination that
cannot be written to (``hamburg-steuer``: its directory lies under a regular file), so that
its deliveries die and can be replayed after the fix. ``scripts/test`` installs chromium
with apt when it is missing; without it these tests fail and say so.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.conftest import DEMO_ADMIN_TOKEN, DEMO_SENDER_TOKEN
from tests.support.gateway_process import REPO, GatewayProcess, gateway_env
from tests.support.messages import fresh

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "docs" / "console"
CONSOLE_SECRET = "console-test-secret-0123456789abcdef"
NUERTINGEN = "hundesteuer/valid/anmeldung-nuertingen.xml"
ATTACHMENT = b"%PDF-1.4 " + bytes(range(256)) * 100
XML = {"Authorization": f"Bearer {DEMO_SENDER_TOKEN}", "Content-Type": "application/xml"}


@dataclass
class Console:
    gateway: GatewayProcess
    config_dir: Path
    out_dir: Path
    blocker: Path
    submissions: dict[str, str]
    """Seeded submissions: name → id."""

    @property
    def url(self) -> str:
        return self.gateway.url


NORD_TOKEN = "console-test-nord-7f3a9c"
NORD = {"Authorization": f"Bearer {NORD_TOKEN}", "Content-Type": "application/xml"}


def destinations(hamburg: Path, bremen: Path) -> str:
    """Hamburg's and Bremen's tax offices, each a file drop into the given directory, and
    a sender that may send there (the example's efa-portal may not)."""
    return (
        "senders:\n"
        "  nord-portal:\n"
        f"    token_sha256: {hashlib.sha256(NORD_TOKEN.encode()).hexdigest()}\n"
        "    services: ['*']\n"
        "    regions: ['02', '04']\n"
        "destinations:\n"
        "  hamburg-steuer:\n"
        "    adapter: filedrop\n"
        f"    settings: {{directory: {hamburg}}}\n"
        "    max_attempts: 1\n"
        "  bremen-steuer:\n"
        "    adapter: filedrop\n"
        f"    settings: {{directory: {bremen}}}\n"
        "    max_attempts: 1\n"
        "routes:\n"
        "  - {municipality: '02000000', service: '*', destinations: [hamburg-steuer]}\n"
        "  - {municipality: '04011000', service: '*', destinations: [bremen-steuer]}\n"
        "mappings:\n"
        "  - service: hundesteuer.anmeldung.0101\n"
        "    municipality: '02000000'\n"
        "    format: json\n"
        "    fields:\n"
        "      vorgang: {const: HH-HUNDESTEUER}\n"
        "      hund: hs:hund/hs:name\n"
    )


# Module scope, not session: Playwright's sync API keeps an event loop running in the main
# thread while it is open, and every pytest-asyncio test after it would then fail with
# "Cannot run the event loop while another loop is running".
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (scripts/test does: "
            "apt-get update && apt-get install -y chromium)"
        )
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    config_dir = root / "config"
    shutil.copytree(REPO / "deploy" / "config", config_dir)
    out = root / "out"
    out.mkdir()
    blocker = root / "not-a-directory"
    blocker.write_text("a file where the destination's directory should be\n")
    # Both unwritable at first: Hamburg's gets fixed by a test, Bremen's stays broken.
    (config_dir / "console-test.yaml").write_text(
        destinations(blocker / "hamburg-steuer", blocker / "bremen-steuer")
    )
    env = gateway_env(
        root / "data",
        config_dir,
        XOEV_GATEWAY_POLL_SECONDS="0.1",
        XOEV_GATEWAY_CONSOLE_SECRET=CONSOLE_SECRET,
        XOEV_GATEWAY_INTAKE_PROCESSES="0",
    )
    gateway = GatewayProcess("serve", env, root / "serve.log")
    try:
        gateway.wait_ready()
        seeded: dict[str, str] = {}
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            for name, sample in [
                ("stuttgart", "hundesteuer/valid/anmeldung-stuttgart.xml"),
                ("koeln", "hundesteuer/valid/anmeldung-koeln.xml"),
                ("muenchen", "bewohnerparken/valid/antrag-muenchen.xml"),
            ]:
                answer = client.post("/v1/submissions", content=fresh(sample), headers=XML)
                assert answer.status_code == 202, answer.text
                seeded[name] = answer.json()["id"]
            # With attachments, for the detail page (names, sizes, hashes).
            files = [
                ("message", ("antrag.xml", fresh(NUERTINGEN), "application/xml")),
                ("attachment", ("Sachkundenachweis.pdf", ATTACHMENT, "application/pdf")),
                ("attachment", ("foto.jpg", b"\xff\xd8\xff jpeg", "image/jpeg")),
            ]
            answer = client.post(
                "/v1/submissions", files=files, headers={"Authorization": XML["Authorization"]}
            )
            assert answer.status_code == 202, answer.text
            seeded["nuertingen"] = answer.json()["id"]
        yield Console(gateway, config_dir, out, blocker, seeded)
    finally:
        gateway.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def log_in(page: Page, console: Console, token: str = DEMO_ADMIN_TOKEN) -> None:
    page.goto(f"{console.url}/admin/")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Log in").click()


def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    """Into docs/console/ (docs/console.md shows them), taken again by every run."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
