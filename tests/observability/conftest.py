"""A gateway configured as in the operator story: one destination delivers (``archive``),
one points at a directory that cannot be written (``broken``: every delivery goes dead),
and a message whose every personal field holds a marker value."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DEMO_ADMIN_TOKEN, DEMO_SENDER_TOKEN, sample
from tests.support.gateway_process import REPO, GatewayProcess, gateway_env

SENDER = {"Authorization": f"Bearer {DEMO_SENDER_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {DEMO_ADMIN_TOKEN}"}
XML = {**SENDER, "Content-Type": "application/xml"}

KOELN = "ags:05315000"  # → archive
STUTTGART = "ags:08111000"  # → broken

# Every personal value of the Stuttgart sample (person, address, contact, bank account,
# dog, attachment) replaced by a marker that cannot occur in a log line by chance.
MARKERS = {
    "<xgb:familienname>Weidmann</xgb:familienname>": "Qxfamilienmarker",
    "<xgb:vorname>Katharina</xgb:vorname>": "Qxvornamemarker",
    "<xgb:geburtsdatum>1986-03-14</xgb:geburtsdatum>": "1912-03-04",
    "<xgb:strasse>Schwabstraße</xgb:strasse>": "Qxstrassemarker",
    "<xgb:hausnummer>42</xgb:hausnummer>": "Qxhausnummermarker",
    "<xgb:adresszusatz>3. OG links</xgb:adresszusatz>": "Qxzusatzmarker",
    "<xgb:ort>Stuttgart</xgb:ort>": "Qxortmarker",
    "<xgb:ortsteil>West</xgb:ortsteil>": "Qxortsteilmarker",
    "<xgb:telefon>+49 711 55512034</xgb:telefon>": "Qxtelefonmarker",
    "<xgb:email>k.weidmann@example.org</xgb:email>": "qxmailmarker@example.org",
    "<xgb:iban>DE96600501017405518812</xgb:iban>": "DE00QXIBANMARKER1234",
    "<xgb:bic>SOLADEST600</xgb:bic>": "QXBICMXX",
    "<xgb:kontoinhaber>Katharina Weidmann</xgb:kontoinhaber>": "Qxinhabermarker",
    "<hs:name>Bruno</hs:name>": "Qxhundmarker",
    "<hs:transpondernummer>276098106543217</hs:transpondernummer>": "271828182845904",
    "<xgb:dateiname>Kaufvertrag_Bruno.pdf</xgb:dateiname>": "Qxanlagemarker.pdf",
    "<xgb:beschreibung>Kaufvertrag Züchter</xgb:beschreibung>": "Qxbeschreibungmarker",
}
ATTACHMENT_NAME = "Qxdateinamemarker.pdf"
BAD_TOKEN = "Qxsecrettokenmarker"
PERSONAL = [*MARKERS.values(), ATTACHMENT_NAME, BAD_TOKEN, "Qxplzmarker"]


def marked_message(uuid: str, recipient: str, **replace: str) -> bytes:
    """The Stuttgart sample with markers in every personal field, a fresh message UUID and
    ``recipient``; ``replace`` swaps further elements (to make it invalid)."""
    text = sample("hundesteuer/valid/anmeldung-stuttgart.xml").decode()
    for element, marker in MARKERS.items():
        assert element in text, element
        start, end = element.index(">") + 1, element.rindex("<")
        text = text.replace(element, element[:start] + marker + element[end:])
    start = text.index("<xgb:nachrichtenUUID>") + len("<xgb:nachrichtenUUID>")
    text = text[:start] + uuid + text[text.index("</xgb:nachrichtenUUID>") :]
    text = text.replace(
        "<xgb:kennung>ags:08111000</xgb:kennung>", f"<xgb:kennung>{recipient}</xgb:kennung>"
    )
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text.encode()


def write_config(config_dir: Path) -> Path:
    config_dir.mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "config" / "senders.yaml", config_dir / "senders.yaml")
    # A plain file where the broken destination's parent directory should be: the file
    # drop cannot create its directory, whoever runs the test (root ignores modes).
    (config_dir.parent / "blocker").write_text("a file where a directory should be")
    (config_dir / "routes.yaml").write_text(
        "destinations:\n"
        "  archive: {adapter: filedrop, settings: {directory: ../out/archive}}\n"
        "  broken:\n"
        "    adapter: filedrop\n"
        "    settings: {directory: ../blocker/broken}\n"
        "    max_attempts: 1\n"
        "routes:\n"
        "  - {municipality: '05315000', service: '*', destinations: [archive]}\n"
        "  - {municipality: '08111000', service: '*', destinations: [broken]}\n"
    )
    return config_dir


def wait_settled(client: httpx.Client, location: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = client.get(location, headers=ADMIN).json()
        if all(d["state"] != "pending" for d in view["deliveries"]):
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.1)


def samples(text: str) -> dict[str, float]:
    """Prometheus text → {'name{labels}': value} (labels as exported, sorted by name)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def metric_names(text: str) -> set[str]:
    return {key.split("{", 1)[0] for key in samples(text)}


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("observability")


@pytest.fixture(scope="session")
def serve(workdir: Path) -> Iterator[GatewayProcess]:
    """``serve`` with JSON logs (the default when stderr is no terminal) and the access log."""
    config = write_config(workdir / "config")
    env = gateway_env(
        workdir / "data",
        config,
        XOEV_GATEWAY_POLL_SECONDS="0.2",
        XOEV_GATEWAY_ACCESS_LOG="true",
    )
    env.pop("XOEV_GATEWAY_LOG_FORMAT", None)
    proc = GatewayProcess("serve", env, workdir / "serve.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@dataclass
class Story:
    delivered: dict[str, Any]
    dead: dict[str, Any]
    config_version: str
    reloaded_version: str
    log: Path
    metrics: str


def _post(client: httpx.Client, recipient: str) -> httpx.Response:
    files = [
        (
            "message",
            ("antrag.xml", marked_message(str(uuid.uuid4()), recipient), "application/xml"),
        ),
        ("attachment", (ATTACHMENT_NAME, b"%PDF-1.4 contract", "application/pdf")),
    ]
    resp = client.post("/v1/submissions", files=files, headers=SENDER)
    assert resp.status_code == 202, resp.text
    return resp


def _wait_log(log: Path, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"no {text!r} in the log"
        time.sleep(0.1)


@pytest.fixture(scope="session")
def story(serve: GatewayProcess, workdir: Path) -> Story:
    routes = workdir / "config" / "routes.yaml"
    with httpx.Client(base_url=serve.url, timeout=30) as client:
        version = client.get("/readyz").json()["config_version"]
        delivered = wait_settled(client, _post(client, KOELN).headers["location"])
        dead = wait_settled(client, _post(client, STUTTGART).headers["location"])
        invalid = marked_message(
            str(uuid.uuid4()),
            KOELN,
            **{
                "<xgb:postleitzahl>70197</xgb:postleitzahl>": "<xgb:postleitzahl>Qxplzmarker</xgb:postleitzahl>"
            },
        )
        rejected = client.post("/v1/submissions", content=invalid, headers=XML)
        assert rejected.status_code == 422, rejected.text
        assert "Qxplzmarker" in rejected.text  # the sender is told; the log is not
        refused = client.post(
            "/v1/submissions",
            content=invalid,
            headers={"Authorization": f"Bearer {BAD_TOKEN}", "Content-Type": "application/xml"},
        )
        assert refused.status_code == 401
        replay = client.post("/v1/admin/dead-letters/replay", json={}, headers=ADMIN)
        assert replay.json()["replayed"] == [dead["deliveries"][0]["id"]]
        _wait_log(serve.log, '"event": "delivery.replayed"')
        wait_settled(client, f"/v1/admin/submissions/{dead['id']}")
        good = routes.read_text()
        routes.write_text(good + "  - {municipality: '05315000', destinations: [nowhere]}\n")
        assert client.post("/v1/admin/config/reload", headers=ADMIN).status_code == 422
        routes.write_text(good + "# reloaded\n")
        reloaded = client.post("/v1/admin/config/reload", headers=ADMIN)
        assert reloaded.status_code == 200, reloaded.text
        erased = client.post(f"/v1/admin/submissions/{delivered['id']}/erase", headers=ADMIN)
        assert erased.status_code == 200, erased.text
        time.sleep(5.5)  # past the scrape cache: the gauges show the replayed dead letter
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
    return Story(
        delivered, dead, version, reloaded.json()["config_version"], serve.log, metrics.text
    )
