"""The admin console as an operator uses it, in headless chromium over real HTTP."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from gateway.console.session import SESSION_COOKIE, SessionSigner
from tests.conftest import DEMO_ADMIN_TOKEN, DEMO_SENDER_TOKEN
from tests.console.conftest import (
    ATTACHMENT,
    CONSOLE_SECRET,
    NORD,
    Console,
    destinations,
    log_in,
    screenshot,
)
from tests.support.messages import fresh

pytestmark = pytest.mark.slow

AXE = Path(__file__).with_name("axe.min.js")


def hamburg_submission(console: Console, ags: str = "02000000") -> str:
    body = fresh("hundesteuer/valid/anmeldung-stuttgart.xml").replace(
        b"ags:08111000", f"ags:{ags}".encode()
    )
    with httpx.Client(base_url=console.url, timeout=30) as client:
        answer = client.post("/v1/submissions", content=body, headers=NORD)
    assert answer.status_code == 202, answer.text
    submission_id: str = answer.json()["id"]
    return submission_id


def test_login_refuses_a_sender_token_and_takes_an_admin_token(page: Page, console: Console):
    page.goto(f"{console.url}/admin/submissions")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin%2Fsubmissions"))
    screenshot(page, "login")
    log_in(page, console, DEMO_SENDER_TOKEN)
    expect(page.get_by_role("alert")).to_have_text("This token is not an admin token.")
    log_in(page, console)
    expect(page).to_have_url(re.compile(r"/admin/submissions$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Submissions")
    cookie = next(c for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["expires"] - time.time() == pytest.approx(1800, abs=60)


def test_find_a_submission_by_municipality_and_open_its_timeline(page: Page, console: Console):
    log_in(page, console)
    screenshot(page, "submissions")
    page.get_by_label("Municipality (AGS or ARS)").fill("08116049")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("08116049 Nürtingen")
    page.get_by_role("link", name=console.submissions["nuertingen"]).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(console.submissions["nuertingen"])
    timeline = page.get_by_role("list", name="Timeline")
    expect(timeline.locator("li").first).to_contain_text("accepted")
    expect(timeline).to_contain_text("delivered")
    expect(page.get_by_role("table", name="Deliveries")).to_contain_text("bw-hundesteuer")
    attachment = page.get_by_role("table", name="Attachments").get_by_role("row").nth(1)
    expect(attachment).to_contain_text("Sachkundenachweis.pdf")
    expect(attachment).to_contain_text("25.0 KiB")
    expect(attachment).to_contain_text(hashlib.sha256(ATTACHMENT).hexdigest())
    page.get_by_text("Show the XML").click()
    expect(page.locator("pre.xml")).to_contain_text("nachrichtenUUID")
    screenshot(page, "submission")


def test_filters_combine_and_paging_walks_older_rows(page: Page, console: Console):
    log_in(page, console)
    page.goto(f"{console.url}/admin/submissions?state=delivered&sender=efa-portal")
    expect(page.locator("table tbody tr").first).to_contain_text("delivered")
    page.goto(f"{console.url}/admin/submissions?service=bewohnerparken.antrag.0201")
    expect(page.locator("table tbody tr")).to_have_count(1)
    expect(page.locator("table tbody tr")).to_contain_text("09162000")
    page.goto(f"{console.url}/admin/submissions?municipality=99999999")
    expect(page.get_by_role("alert")).to_contain_text("no municipality key")
    page.goto(f"{console.url}/admin/submissions?until=2000-01-01T00:00")
    expect(page.locator("table tbody")).to_contain_text("No submissions match.")
    answer = page.goto(f"{console.url}/admin/submissions/no-such-id")
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("alert")).to_have_text("no submission no-such-id")


def test_replay_a_dead_letter_after_fixing_its_destination(page: Page, console: Console):
    submission_id = hamburg_submission(console)
    log_in(page, console)
    deadline = time.monotonic() + 30
    while True:
        page.goto(f"{console.url}/admin/dead-letters")
        if page.get_by_role("link", name=submission_id).count():
            break
        assert time.monotonic() < deadline, page.content()
        time.sleep(0.2)
    section = page.get_by_role("region", name=re.compile("hamburg-steuer"))
    expect(section).to_contain_text("cannot create")
    screenshot(page, "dead-letters")
    section.get_by_role("row").filter(has_text=submission_id).get_by_role(
        "link", name="Preview"
    ).click()
    expect(page.get_by_role("region", name="What failed")).to_contain_text("not-a-directory")
    now = page.get_by_role("region", name="What the adapter would receive now")
    expect(now).to_contain_text('"vorgang": "HH-HUNDESTEUER"')
    screenshot(page, "dead-letter")
    dead_letter_page = page.url

    # The fix: the destination's directory in the configuration, reloaded from the console.
    (console.config_dir / "console-test.yaml").write_text(
        destinations(console.out_dir / "hamburg-steuer", console.blocker / "bremen-steuer")
    )
    page.goto(f"{console.url}/admin/config")
    page.get_by_role("button", name="Reload the configuration").click()
    expect(page.get_by_role("status")).to_contain_text("Reloaded")
    page.goto(dead_letter_page)
    expect(page.get_by_role("region", name="What the adapter would receive now")).to_contain_text(
        str(console.out_dir / "hamburg-steuer")
    )
    page.get_by_role("button", name="Replay this delivery").click()
    expect(page.get_by_role("status")).to_contain_text("1 delivery(s) replayed")
    deadline = time.monotonic() + 30
    while True:
        page.goto(f"{console.url}/admin/submissions/{submission_id}")
        if page.get_by_role("table", name="Deliveries").get_by_text("delivered").count():
            break
        assert time.monotonic() < deadline, page.content()
        time.sleep(0.2)
    expect(page.get_by_role("list", name="Timeline")).to_contain_text("replayed")
    assert list((console.out_dir / "hamburg-steuer").iterdir())


def wait_dead_letters(page: Page, console: Console, submission_ids: list[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        page.goto(f"{console.url}/admin/dead-letters")
        if all(page.get_by_role("link", name=s).count() for s in submission_ids):
            return
        assert time.monotonic() < deadline, page.content()
        time.sleep(0.2)


def replays(page: Page, console: Console, submission_id: str) -> int:
    page.goto(f"{console.url}/admin/submissions/{submission_id}")
    return page.get_by_role("list", name="Timeline").get_by_text("delivery.replayed").count()


def test_replay_a_selection_then_all_of_a_destination(page: Page, console: Console):
    """Bremen's destination stays broken: replayed letters die again, one attempt more."""
    ids = [hamburg_submission(console, "04011000") for _ in range(3)]
    log_in(page, console)
    wait_dead_letters(page, console, ids)
    section = page.get_by_role("region", name=re.compile("bremen-steuer"))
    for submission_id in ids[:2]:
        section.get_by_role("row").filter(has_text=submission_id).get_by_role("checkbox").check()
    section.get_by_role("button", name="Replay selected").click()
    expect(page.get_by_role("status")).to_contain_text("2 delivery(s) replayed")
    assert [replays(page, console, s) for s in ids] == [1, 1, 0]
    wait_dead_letters(page, console, ids)
    page.get_by_role("region", name=re.compile("bremen-steuer")).get_by_role(
        "button", name=re.compile("Replay all")
    ).click()
    expect(page.get_by_role("status")).to_contain_text("delivery(s) replayed")
    assert [replays(page, console, s) for s in ids] == [2, 2, 1]


def test_preview_a_pasted_message(page: Page, console: Console):
    log_in(page, console)
    page.goto(f"{console.url}/admin/config/preview")
    xml = fresh("hundesteuer/valid/anmeldung-nuertingen.xml").decode()
    page.get_by_label("Message (XML)").fill(xml)
    page.get_by_role("button", name="Preview").click()
    result = page.locator("main")
    expect(result).to_contain_text("08116049 Nürtingen")
    expect(result).to_contain_text("kreis=Landkreis Esslingen")
    screenshot(page, "preview")
    page.get_by_label("Municipality (AGS or ARS; empty: the message's recipient)").fill("01001000")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("alert")).to_contain_text("no route")


def test_explain_shows_which_file_and_level_set_each_field(page: Page, console: Console):
    log_in(page, console)
    page.goto(f"{console.url}/admin/config/explain")
    page.get_by_label("Municipality (AGS or ARS)").fill("08116049")
    page.get_by_label("Service (message type)").select_option("hundesteuer.anmeldung.0101")
    page.get_by_role("button", name="Explain").click()
    main = page.locator("main")
    expect(main).to_contain_text("municipality 08 (Land)")
    expect(main).to_contain_text("mappings-nuertingen.yaml")
    expect(page.get_by_role("row").filter(has_text="iban")).to_contain_text("removed")
    screenshot(page, "explain")


def test_a_refused_reload_shows_file_line_and_key(page: Page, console: Console):
    log_in(page, console)
    page.goto(f"{console.url}/admin/config")
    screenshot(page, "config")
    version = page.locator("dl.facts dd").first.inner_text()
    broken = console.config_dir / "zz-broken.yaml"
    broken.write_text(
        "routes:\n  - {municipality: '01001000', service: '*', destinations: [nowhere]}\n"
    )
    try:
        page.get_by_role("button", name="Reload the configuration").click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("Configuration refused; the previous one stays active.")
        expect(alert).to_contain_text(
            f"{broken}:2: routes.0.destinations.0: unknown destination 'nowhere'"
        )
        expect(page.locator("dl.facts dd").first).to_have_text(version)
        screenshot(page, "config-refused", full_page=False)
    finally:
        broken.unlink()


def test_schemas_health_and_docs_pages(page: Page, console: Console):
    log_in(page, console)
    page.goto(f"{console.url}/admin/schemas")
    expect(page.locator("main")).to_contain_text("hundesteuer.anmeldung.0101")
    screenshot(page, "schemas")
    page.get_by_role("link", name="hundesteuer.anmeldung.0101").click()
    expect(page.get_by_role("table", name="Field catalog")).to_contain_text("hs:hund/hs:name")
    screenshot(page, "fields", full_page=False)
    page.goto(f"{console.url}/admin/health")
    readiness = page.get_by_role("table", name="Readiness")
    expect(readiness.get_by_role("row").filter(has_text="store")).to_contain_text("ok")
    expect(readiness.get_by_role("row").filter(has_text="broker")).to_contain_text("ok")
    screenshot(page, "health")


def test_docs_work_offline_with_the_bearer_scheme(context: BrowserContext, console: Console):
    """Every request that leaves 127.0.0.1 is refused: the page must still render."""
    outside: list[str] = []

    def only_local(route, request):
        if request.url.startswith(console.url):
            route.continue_()
        else:
            outside.append(request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    page.goto(f"{console.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("xoev-gateway")
    page.get_by_role("button", name="Authorize").first.click()
    expect(page.locator(".auth-container")).to_contain_text("bearer")
    page.keyboard.press("Escape")
    screenshot(page, "docs", full_page=False)
    assert outside == []
    spec = httpx.get(f"{console.url}/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "500" in responses, (path, method)
            if path.startswith("/v1/"):
                assert operation["security"] == [{"bearer": []}], (path, method)
                assert {"401", "403"} <= set(responses), (path, method)
                problem = responses["401"]["content"]["application/problem+json"]
                assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_a_forged_post_without_the_csrf_token_is_refused(page: Page, console: Console):
    submission_id = console.submissions["stuttgart"]
    log_in(page, console)
    forged = page.context.request.post(
        f"{console.url}/admin/config/reload", form={"csrf": "guessed"}
    )
    assert forged.status == 403
    assert "CSRF" in forged.text()
    missing = page.context.request.post(
        f"{console.url}/admin/dead-letters/replay", form={"action": "all", "destination": "x"}
    )
    assert missing.status == 403
    # The session stays usable, and a submission page still answers as before.
    page.goto(f"{console.url}/admin/submissions/{submission_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(submission_id)


def test_an_expired_session_goes_back_to_the_login(page: Page, console: Console):
    log_in(page, console)
    signer = SessionSigner(CONSOLE_SECRET.encode(), lifetime=-1)  # expired when issued
    _session, expired = signer.new_session("admin")
    page.context.clear_cookies()  # the login's cookie, replaced by one that has expired
    page.context.add_cookies(
        [{"name": SESSION_COOKIE, "value": expired, "url": f"{console.url}/admin/"}]
    )
    page.goto(f"{console.url}/admin/dead-letters")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin%2Fdead-letters&expired=1"))
    expect(page.get_by_role("status")).to_have_text("Your session expired. Log in again.")
    # A cookie signed with another key is no session either.
    _session, other = SessionSigner(b"another key", lifetime=600).new_session("admin")
    page.context.clear_cookies()
    page.context.add_cookies(
        [{"name": SESSION_COOKIE, "value": other, "url": f"{console.url}/admin/"}]
    )
    answer = page.context.request.get(f"{console.url}/admin/health", max_redirects=0)
    assert answer.status == 303


def test_keyboard_reaches_every_control_and_axe_finds_no_serious_violation(
    browser: Browser, console: Console
):
    """axe-core (vendored tests/console/axe.min.js, MPL-2.0) on every page; the console's
    CSP forbids inline scripts, so this context bypasses CSP to inject it."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page = context.new_page()
    try:
        # Keyboard only: the token field has the focus, Enter logs in; on every page the
        # first Tab reaches the skip link, and the filter form is reached in label order.
        page.goto(f"{console.url}/admin/login")
        expect(page.get_by_label("Admin token")).to_be_focused()
        page.keyboard.type(DEMO_ADMIN_TOKEN)
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"/admin/submissions$"))
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        expect(page.get_by_label("State")).to_be_focused()
        paths = [
            "/admin/submissions",
            f"/admin/submissions/{console.submissions['koeln']}",
            "/admin/dead-letters",
            "/admin/config",
            "/admin/config/explain?municipality=08116049&service=hundesteuer.anmeldung.0101",
            "/admin/config/preview",
            "/admin/schemas",
            "/admin/schemas/hundesteuer.anmeldung.0101",
            "/admin/health",
            "/admin/audit",
        ]
        for path in paths:
            page.goto(console.url + path)
            page.add_script_tag(path=str(AXE))
            result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
            serious = [
                (v["id"], v["help"], [n["target"] for n in v["nodes"]][:3])
                for v in result["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            assert serious == [], (path, serious)
        page.context.clear_cookies()
        page.goto(console.url + "/admin/login")
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        assert [
            v["id"] for v in result["violations"] if v["impact"] in ("serious", "critical")
        ] == []
    finally:
        context.close()


def test_console_actions_are_in_the_audit_log(page: Page, console: Console):
    log_in(page, console, DEMO_SENDER_TOKEN)  # refused: a sender's token
    log_in(page, console)
    page.goto(f"{console.url}/admin/submissions/{console.submissions['koeln']}")
    page.goto(f"{console.url}/admin/audit")
    rows = page.get_by_role("row")
    expect(
        rows.filter(has_text="sender:efa-portal").filter(has_text="console.login").first
    ).to_contain_text("refused")
    read = rows.filter(has_text="submission.read").filter(has_text=console.submissions["koeln"])
    expect(read.first).to_contain_text("admin:admin")
    expect(read.first).to_contain_text('"via": "console"')
    screenshot(page, "audit", full_page=False)
    page.get_by_label("Action").fill("console.login")
    page.get_by_role("button", name="Filter").click()
    actions = page.locator("table tbody tr td:nth-child(3)").all_inner_texts()
    assert actions and set(actions) == {"console.login"}
