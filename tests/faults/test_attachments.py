"""Every attachment that gets a 202 is delivered, as its own file, under a name every adapter
can write; what cannot be delivered is refused before the 202 (real ``serve``, SQLite)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.filedrop import FileDropAdapter, FileDropSettings
from gateway.sdk import Attachment, Delivery, PermanentDeliveryError
from tests.faults.conftest import SENDER, attachment, multipart
from tests.support.gateway_process import GatewayProcess
from tests.support.messages import fresh

SAMPLE = "hundesteuer/valid/anmeldung-nuertingen.xml"


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'gateway.db'}"


def delivered(client: httpx.Client, response: httpx.Response, out: Path) -> dict[str, Any]:
    """Wait for the single delivery; the file drop's metadata plus the files it wrote."""
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = client.get(response.headers["location"], headers=SENDER).json()
        if view["status"] in ("delivered", "dead"):
            break
        time.sleep(0.1)
    (delivery,) = view["deliveries"]
    assert delivery["state"] == "delivered", delivery
    folder = out / delivery["destination"]
    meta = json.loads((folder / f"{delivery['id']}.json").read_text())
    files = {p.name: p.read_bytes() for p in (folder / f"{delivery['id']}.attachments").iterdir()}
    return {"view": view, "meta": meta, "files": files}


def test_same_names_and_paths_arrive_as_separate_files(
    serve: GatewayProcess, config_dir: Path
) -> None:
    body, headers = multipart(
        fresh(SAMPLE),
        [
            attachment(b"scan.pdf", b"first"),
            attachment(b"scan.pdf", b"second"),
            attachment(b"dir1/scan.pdf", b"third"),
            attachment(b"dir2/scan.pdf", b"fourth"),
            attachment(b"..\\..\\x.pdf", b"fifth"),
        ],
    )
    with httpx.Client(base_url=serve.url, timeout=30) as client:
        got = delivered(
            client,
            client.post("/v1/submissions", content=body, headers=headers),
            config_dir.parent / "out",
        )
    assert got["files"] == {
        "1-scan.pdf": b"first",
        "2-scan.pdf": b"second",
        "3-dir1_scan.pdf": b"third",
        "4-dir2_scan.pdf": b"fourth",
        "5-x.pdf": b"fifth",
    }
    names = [(a["name"], a["file_name"]) for a in got["meta"]["attachments"]]
    assert names == [
        ("scan.pdf", "1-scan.pdf"),
        ("scan.pdf", "2-scan.pdf"),
        ("dir1/scan.pdf", "3-dir1_scan.pdf"),
        ("dir2/scan.pdf", "4-dir2_scan.pdf"),
        ("..\\..\\x.pdf", "5-x.pdf"),
    ]
    assert [a["name"] for a in got["view"]["attachments"]] == [n for n, _ in names]


def test_rfc5987_filename_is_decoded_and_kept_as_the_original_name(
    serve: GatewayProcess, config_dir: Path
) -> None:
    body, headers = multipart(
        fresh(SAMPLE),
        [
            (b"form-data; name=\"attachment\"; filename*=UTF-8''%C3%BCbersicht.pdf", None, b"u"),
            # both given: filename* wins (RFC 6266 4.3)
            (
                b'form-data; name="attachment"; filename="fallback.pdf"; '
                b"filename*=UTF-8''Gr%C3%B6%C3%9Fe.pdf",
                b"application/pdf",
                b"g",
            ),
            # a raw UTF-8 name, as browsers send it
            attachment("Straße.pdf".encode(), b"s"),
        ],
    )
    with httpx.Client(base_url=serve.url, timeout=30) as client:
        got = delivered(
            client,
            client.post("/v1/submissions", content=body, headers=headers),
            config_dir.parent / "out",
        )
    assert [a["name"] for a in got["meta"]["attachments"]] == [
        "übersicht.pdf",
        "Größe.pdf",
        "Straße.pdf",
    ]
    assert got["meta"]["attachments"][0]["content_type"] == "application/octet-stream"
    assert got["files"] == {"1-übersicht.pdf": b"u", "2-Größe.pdf": b"g", "3-Straße.pdf": b"s"}


def test_a_300_character_name_is_delivered_under_a_shortened_one(
    serve: GatewayProcess, config_dir: Path
) -> None:
    name = "Bauantrag-" + "ä" * 286 + ".pdf"
    assert len(name) == 300
    body, headers = multipart(fresh(SAMPLE), [attachment(name.encode(), b"%PDF long")])
    with httpx.Client(base_url=serve.url, timeout=30) as client:
        got = delivered(
            client,
            client.post("/v1/submissions", content=body, headers=headers),
            config_dir.parent / "out",
        )
    ((file_name, content),) = got["files"].items()
    assert content == b"%PDF long"
    assert file_name.startswith("1-Bauantrag-ää") and file_name.endswith(".pdf")
    assert len(file_name.encode()) <= 200
    assert got["meta"]["attachments"][0]["name"] == name
    assert got["view"]["attachments"][0]["name"] == name


REFUSED = {
    "nul in filename": (attachment(b"a\0b.pdf", b"x"), "attachments[1].filename"),
    "nul in filename*": (
        (b"form-data; name=\"attachment\"; filename*=UTF-8''a%00b.pdf", None, b"x"),
        "attachments[1].filename",
    ),
    "control character": (attachment(b"a\x1bb.pdf", b"x"), "attachments[1].filename"),
    "filename* not UTF-8": (
        (b"form-data; name=\"attachment\"; filename*=UTF-8''%FF.pdf", None, b"x"),
        "attachments[1].filename",
    ),
    "1001 characters": (attachment(b"n" * 1001, b"x"), "attachments[1].filename"),
    "no filename": ((b'form-data; name="attachment"', None, b"x"), "attachments[1].filename"),
    "empty filename": (attachment(b"", b"x"), "attachments[1].filename"),
    "nul in content type": (
        attachment(b"a.pdf", b"x", b"application/pdf\0"),
        "attachments[1].content_type",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_an_attachment_that_cannot_be_delivered_is_refused_before_the_202(
    serve: GatewayProcess, case: str
) -> None:
    part, field = REFUSED[case]
    body, headers = multipart(fresh(SAMPLE), [attachment(b"fine.pdf", b"ok"), part])
    field = field.replace("[1]", "[2]")
    with httpx.Client(base_url=serve.url, timeout=30) as client:
        response = client.post("/v1/submissions", content=body, headers=headers)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("/invalid-attachment")
    assert problem["field"] == field


def test_an_unwritable_name_is_permanent_at_once(tmp_path: Path) -> None:
    """A name the file system refuses (here longer than its 255 bytes, which intake never
    produces) is dead-lettered on the first attempt: no retry can fix it."""
    blob = tmp_path / "blob"
    blob.write_bytes(b"x")
    adapter = FileDropAdapter(FileDropSettings(directory=tmp_path / "out"))
    delivery = Delivery(
        delivery_id="d-1",
        submission_id="s-1",
        message_uuid="u-1",
        message_type="hundesteuer.anmeldung.0101",
        municipality="08116049",
        sender="portal",
        destination="drop",
        attempt=1,
        xml=b"<a/>",
        attachments=[
            Attachment("x", "a/b", hashlib.sha256(b"x").hexdigest(), 1, blob, file_name="n" * 300)
        ],
    )
    with pytest.raises(PermanentDeliveryError, match="too long"):
        asyncio.run(adapter.deliver(delivery))
