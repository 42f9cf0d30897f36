"""Routing keys and identity from each header family, and ZIP submissions, over real HTTP
against ``xoev-gateway serve`` with the made-up schemas of ``tests/data/headers``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import header_messages as m
from tests.support.gateway_process import REPO, GatewayProcess, gateway_env

SENDER = {"Authorization": f"Bearer {m.SENDER_TOKEN}"}
DEFAULT = {"Authorization": f"Bearer {m.DEFAULT_TOKEN}"}
XML = {"Content-Type": "application/xml"}
ZIP = {"Content-Type": "application/zip"}
ZIP_MAX_BYTES = 3 * 1024 * 1024


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("headers")
    target = root / "config"
    shutil.copytree(REPO / "deploy" / "config", target)
    (target / "headers.yaml").write_text(m.config_yaml(root / "out"), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def gateway(config_dir: Path) -> Iterator[GatewayProcess]:
    env = gateway_env(
        config_dir.parent / "data",
        config_dir,
        XOEV_GATEWAY_SCHEMA_DIRS=json.dumps([str(m.HEADERS_DIR)]),
        XOEV_GATEWAY_POLL_SECONDS="0.2",
        XOEV_GATEWAY_ZIP_MAX_BYTES=str(ZIP_MAX_BYTES),
        XOEV_GATEWAY_ZIP_MAX_ENTRIES="20",
    )
    proc = GatewayProcess("serve", env, config_dir.parent / "serve.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        yield c


def submit(
    client: httpx.Client, body: bytes, auth: dict[str, str] = SENDER, kind: dict[str, str] = XML
) -> httpx.Response:
    return client.post("/v1/submissions", content=body, headers={**auth, **kind})


def settled(client: httpx.Client, response: httpx.Response, auth: dict[str, str] = SENDER) -> Any:
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 20
    while True:
        view = client.get(response.headers["location"], headers=auth).json()
        if all(d["state"] != "pending" for d in view["deliveries"]):
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.1)


def delivered_to(view: Any, destination: str) -> None:
    assert view["status"] == "delivered", view
    assert [d["destination"] for d in view["deliveries"]] == [destination]


def test_basisnachricht_header_by_default(client: httpx.Client) -> None:
    message_uuid = str(uuid.uuid4()).upper()
    view = settled(client, submit(client, m.g2g("ags:08111000", message_uuid)))
    delivered_to(view, "headers-stuttgart")
    assert view["message_uuid"] == message_uuid.lower()
    assert view["recipient"] == {
        "kennung": "ags:08111000",
        "municipality": "08111000",
        "source": "message",
    }
    accepted = view["events"][0]["detail"]
    assert accepted["recipient_source"] == "message"
    assert accepted["created"] == "2026-11-03T09:41:27+01:00"


def test_xdomea_2_prefix_and_key_in_two_elements(client: httpx.Client) -> None:
    body = m.xdomea(2, f"p-{uuid.uuid4()}", "Vorgang.Abgabe.0401", prefix="ags", key="05315000")
    view = settled(client, submit(client, body))
    delivered_to(view, "headers-koeln")
    assert view["recipient"]["kennung"] == "ags:05315000"


@pytest.mark.parametrize("prefix", ["ags", "ags:"])
def test_xdomea_3_prefix_with_or_without_colon(client: httpx.Client, prefix: str) -> None:
    view = settled(client, submit(client, m.xdomea(3, f"p-{uuid.uuid4()}", prefix=prefix)))
    delivered_to(view, "headers-stuttgart")
    assert view["recipient"]["kennung"] == "ags:08111000"


def test_xdomea_3_identity_is_process_and_message_type(client: httpx.Client) -> None:
    process = f"p-{uuid.uuid4()}"
    offer = submit(client, m.xdomea(3, process, "Vorgang.Anbieten.0501"))
    rating = submit(client, m.xdomea(3, process, "Vorgang.Bewerten.0502"))
    assert offer.status_code == rating.status_code == 202, (offer.text, rating.text)
    assert offer.json()["id"] != rating.json()["id"]

    again = submit(client, m.xdomea(3, process, "Vorgang.Anbieten.0501"))
    assert again.status_code == 202
    assert again.json()["id"] == offer.json()["id"]

    other = submit(client, m.xdomea(3, process, "Vorgang.Anbieten.0501", note="changed"))
    assert other.status_code == 409, other.text
    assert other.json()["type"].endswith("/duplicate-conflict")

    view = settled(client, offer)
    delivered_to(view, "headers-stuttgart")
    assert view["events"][0]["detail"]["identity"] == f"{process} + Vorgang.Anbieten.0501"


def test_xdomea_4_mixed_qualification(client: httpx.Client) -> None:
    message_uuid = str(uuid.uuid4())
    view = settled(client, submit(client, m.xdomea4("ags:05315000", message_uuid)))
    delivered_to(view, "headers-koeln")
    assert view["message_uuid"] == message_uuid
    again = submit(client, m.xdomea4("ags:05315000", message_uuid))
    assert again.json()["id"] == view["id"]


def test_missing_recipient_is_refused_naming_the_xpath(client: httpx.Client) -> None:
    response = submit(client, m.xdomea(3, f"p-{uuid.uuid4()}", prefix=None))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("/missing-routing-key")
    assert (
        "*[local-name()='Kopf']/*[local-name()='Empfaenger']/*[local-name()='Behoerdenkennung']"
        "/*[local-name()='Praefix']/*[local-name()='code']" in problem["detail"]
    )
    assert "headers-sender" in problem["detail"]


def test_missing_recipient_taken_from_the_senders_default(client: httpx.Client) -> None:
    body = m.xdomea(3, f"p-{uuid.uuid4()}", prefix=None)
    view = settled(client, submit(client, body, DEFAULT), DEFAULT)
    delivered_to(view, "headers-koeln")
    assert view["recipient"] == {
        "kennung": "ags:05315000",
        "municipality": "05315000",
        "source": "sender",
    }
    # A recipient in the message wins over the sender's default.
    view = settled(client, submit(client, m.xdomea(3, f"p-{uuid.uuid4()}"), DEFAULT), DEFAULT)
    delivered_to(view, "headers-stuttgart")
    assert view["recipient"]["source"] == "message"


def test_message_without_recipient_family(client: httpx.Client) -> None:
    refused = submit(client, m.fund("Schirm"))
    assert refused.status_code == 422
    assert "names no recipient" in refused.json()["detail"]

    body = m.fund(f"Schlüssel {uuid.uuid4()}")
    view = settled(client, submit(client, body, DEFAULT), DEFAULT)
    delivered_to(view, "headers-koeln")
    assert view["recipient"]["source"] == "sender"
    # No id in the message: the same content is the same message.
    assert submit(client, body, DEFAULT).json()["id"] == view["id"]


def test_custom_header_xpaths_with_identity_per_sender(client: httpx.Client) -> None:
    process = f"v-{uuid.uuid4()}"
    first = settled(client, submit(client, m.custom(process, prefix="ags:")))
    delivered_to(first, "headers-stuttgart")
    # The same process from another sender is another message (scope: sender).
    second = submit(client, m.custom(process, prefix="ags"), DEFAULT)
    assert second.status_code == 202
    assert second.json()["id"] != first["id"]


# ZIP containers


def test_zip_happy_path(client: httpx.Client, config_dir: Path) -> None:
    process = f"p-{uuid.uuid4()}"
    xml = m.xdomea(3, process, files=("antrag.pdf", "plan.png"))
    body = m.zip_of(
        (f"{process}_0501.xml", xml),
        ("antrag.pdf", b"%PDF-1.7 antrag"),
        ("plan.png", b"\x89PNG plan"),
    )
    view = settled(client, submit(client, body, kind=ZIP))
    delivered_to(view, "headers-stuttgart")
    assert sorted((a["name"], a["content_type"], a["size"]) for a in view["attachments"]) == [
        ("antrag.pdf", "application/pdf", 15),
        ("plan.png", "image/png", 9),
    ]
    (delivery,) = view["deliveries"]
    folder = config_dir.parent / "out" / "stuttgart"
    assert (folder / f"{delivery['id']}.xml").read_bytes() == xml


def refusal(response: httpx.Response, status: int, slug: str) -> str:
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["type"] == f"https://xoev-gateway.de/problems/{slug}", problem
    detail: str = problem["detail"]
    return detail


def test_zip_files_must_be_those_the_message_lists(client: httpx.Client) -> None:
    process = f"p-{uuid.uuid4()}"
    xml = m.xdomea(3, process, files=("antrag.pdf", "plan.png"))
    body = m.zip_of(("m.xml", xml), ("antrag.pdf", b"a"), ("extra.txt", b"x"))
    detail = refusal(submit(client, body, kind=ZIP), 422, "zip-content-mismatch")
    assert "plan.png" in detail
    assert "extra.txt" in detail


@pytest.mark.parametrize("name", ["../evil.pdf", "a/../../evil.pdf", "/etc/evil.pdf", "C:/x.pdf"])
def test_zip_path_traversal_refused(client: httpx.Client, name: str) -> None:
    body = m.zip_of(("m.xml", m.xdomea(3, "p-1")), (name, b"x"))
    assert name in refusal(submit(client, body, kind=ZIP), 400, "unsafe-zip-path")


def test_zip_duplicate_names_refused(client: httpx.Client) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate
        body = m.zip_of(("m.xml", m.xdomea(3, "p-1")), ("a.pdf", b"1"), ("A.PDF", b"2"))
    refusal(submit(client, body, kind=ZIP), 400, "duplicate-zip-entry")


def test_zip_nested_archives_refused(client: httpx.Client) -> None:
    inner = m.zip_of(("x.txt", b"x"))
    by_name = m.zip_of(("m.xml", m.xdomea(3, "p-1")), ("inner.zip", inner))
    refusal(submit(client, by_name, kind=ZIP), 400, "nested-zip")
    by_content = m.zip_of(("m.xml", m.xdomea(3, "p-1")), ("inner.pdf", inner))
    assert "inner.pdf" in refusal(submit(client, by_content, kind=ZIP), 400, "nested-zip")


def test_zip_bombs_refused(client: httpx.Client) -> None:
    xml = ("m.xml", m.xdomea(3, "p-1"))
    ratio = m.zip_of(xml, ("zeros.bin", bytes(2 * 1024 * 1024)))
    assert "expands" in refusal(submit(client, ratio, kind=ZIP), 413, "zip-bomb")
    size = m.zip_of(
        xml,
        ("a.bin", os.urandom(2 * 1024 * 1024)),
        ("b.bin", os.urandom(2 * 1024 * 1024)),
        method=zipfile.ZIP_STORED,
    )
    assert str(ZIP_MAX_BYTES) in refusal(submit(client, size, kind=ZIP), 413, "zip-bomb")
    many = m.zip_of(xml, *((f"f{i}.txt", b"x") for i in range(25)))
    assert "26 entries" in refusal(submit(client, many, kind=ZIP), 413, "zip-bomb")


def test_zip_without_one_message_refused(client: httpx.Client) -> None:
    refusal(submit(client, b"not a zip at all", kind=ZIP), 400, "malformed-zip")
    two = m.zip_of(("a.xml", m.xdomea(3, "p-1")), ("b.xml", m.xdomea(3, "p-2")))
    assert "a.xml, b.xml" in refusal(submit(client, two, kind=ZIP), 400, "malformed-zip")
    refusal(submit(client, m.zip_of(("a.pdf", b"x")), kind=ZIP), 400, "malformed-zip")


# CLI


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


def test_cli_shows_header_fields_and_keys_read(config_dir: Path, tmp_path: Path) -> None:
    schemas = str(m.HEADERS_DIR)
    check = run_cli("config", "check", "--config", str(config_dir), "--schemas", schemas)
    assert check.returncode == 0, check.stderr
    assert "schema set test-xdomea-3: header xdomea-3" in check.stdout
    assert "recipient.prefix  *[local-name()='Kopf']/*[local-name()='Empfaenger']" in check.stdout
    assert "schema set test-custom: header none + " in check.stdout
    assert "recipient.key     c:an/c:nummer" in check.stdout

    fields = run_cli("schema", "fields", "Vorgang.Bewerten.0502", "--schemas", schemas)
    assert fields.returncode == 0, fields.stderr
    assert "# header of schema set test-xdomea-3 (xdomea-3):" in fields.stdout
    assert "identity" in fields.stdout and "+ message type" in fields.stdout

    message = tmp_path / "m.xml"
    message.write_bytes(m.xdomea(3, "p-42", "Vorgang.Bewerten.0502", prefix="ags:"))
    validate = run_cli("validate", "--schemas", schemas, str(message))
    assert validate.returncode == 0, validate.stdout
    assert "recipient: ags:08111000 -> 08111000" in validate.stdout
    assert "identity: p-42 + Vorgang.Bewerten.0502 (gateway-wide)" in validate.stdout
