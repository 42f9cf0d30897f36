"""The ``xoev-gateway`` command as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.gateway_process import REPO, free_port

XBAU_INSTANCE = REPO / "tests" / "data" / "xbau" / "baugenehmigung.antrag.0200.xml"


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_validate_xbau_instance_passes(xbau_catalog: Path) -> None:
    result = run("validate", "--schemas", str(xbau_catalog), str(XBAU_INSTANCE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid xbau-2.6 baugenehmigung.antrag.0200" in result.stdout
    assert "recipient=08116049" in result.stdout


def test_validate_broken_xbau_copy_reports_xpath_and_line(
    xbau_catalog: Path, tmp_path: Path
) -> None:
    text = XBAU_INSTANCE.read_text(encoding="utf-8")
    # Break an element deep inside: an xs:dateTime that is no date.
    start = text.index("<erstellungszeitpunkt>") + len("<erstellungszeitpunkt>")
    end = text.index("</erstellungszeitpunkt>")
    broken = tmp_path / "broken.xml"
    broken.write_text(text[:start] + "gestern" + text[end:], encoding="utf-8")
    line = text[:start].count("\n") + 1
    result = run("validate", "--schemas", str(xbau_catalog), str(broken))
    assert result.returncode == 2
    assert f"{broken}: invalid: xsd failed: 1 schema violation against xbau-2.6" in result.stdout
    assert (
        f"{broken}:{line}:0: error [SCHEMAV_CVC_DATATYPE_VALID_1_2_1] /xbau:baugenehmigung.antrag.0200/nachrichtenkopf.g2g/identifikation.nachricht/erstellungszeitpunkt:"
        in result.stdout
    ), result.stdout
    assert "gestern" in result.stdout


def test_validate_reports_each_file(tmp_path: Path) -> None:
    samples = REPO / "schemas" / "samples" / "hundesteuer"
    result = run(
        "validate",
        str(samples / "valid" / "anmeldung-koeln.xml"),
        str(samples / "invalid" / "unknown-recipient.xml"),
    )
    assert result.returncode == 2
    assert "anmeldung-koeln.xml: valid hundesteuer-1.0" in result.stdout
    assert (
        "unknown-recipient.xml: valid against hundesteuer-1.0, but the header and recipient "
        "check failed: unknown-recipient: recipient 'ags:99999999'" in result.stdout
    )
    # Schema only: the same file passes (no header or routing check).
    only = run("validate", "--schema-only", str(samples / "invalid" / "unknown-recipient.xml"))
    assert only.returncode == 0, only.stdout
    assert "unknown-recipient.xml: valid hundesteuer-1.0 (schema only)" in only.stdout


def test_config_check_names_the_problem_in_one_line(config_dir: Path) -> None:
    ok = run("config", "check", "--config", str(config_dir))
    assert ok.returncode == 0 and "ok (version" in ok.stdout
    routes = config_dir / "routes.yaml"
    routes.write_text(routes.read_text().replace("adapter: filedrop", "adapter: fildrop", 1))
    bad = run("config", "check", "--config", str(config_dir))
    assert bad.returncode == 6
    (line,) = bad.stderr.strip().splitlines()
    assert line.startswith(f"error: {routes}:")
    assert "destinations.bw-hundesteuer.adapter: unknown adapter 'fildrop'" in line


def test_demo_accepts_rejects_and_delivers(tmp_path: Path) -> None:
    port = free_port()
    result = run("demo", "--workdir", str(tmp_path / "demo"), "--port", str(port))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"embedded mode at http://127.0.0.1:{port}" in result.stdout
    samples = REPO / "schemas" / "samples"
    for path in samples.glob("*/*/*.xml"):  # each sample name whole, on one line
        assert f"/{path.relative_to(samples)}" in result.stdout, path
    assert "rejected" in result.stdout and "accepted" in result.stdout
    delivered = sorted(
        p.parent.name
        for p in (tmp_path / "demo" / "out").glob("*/*.xml")
        if ".mapped." not in p.name  # the mapped documents of XML mappings
    )
    assert delivered.count("koeln-archiv") == 2 and "stuttgart-steueramt" in delivered
    # the FIT-Connect path: submitted to the local Submission API, accepted, delivered
    assert "FIT-Connect" in result.stdout and "accept-submission" in result.stdout
    assert "events: accepted, fit-connect.accept-sent" in result.stdout
    assert delivered.count("muenchen-kvr") == 4  # with the one over FIT-Connect


def test_config_check_refuses_unknown_message_types_and_fields(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "deploy" / "config", config)
    (config / "zz-new.yaml").write_text(
        "routes:\n"
        '  - {municipality: "08116", service: sondernutzung.antrag.O101, destinations: [bw-hundesteuer]}\n'
        '  - {municipality: "08117", service: hundesteuer.anmeldung.O101, destinations: [bw-hundesteuer]}\n'
        "mappings:\n"
        "  - service: hundesteuer.abmeldung.0102\n"
        '    municipality: "08116"\n'
        "    fields:\n"
        "      hund: hs:hundName\n"
        "      halter: {xpath: hs:halter/hs:persn/xgb:familienname}\n"
        "      rechnung: {template: '{x}', args: {x: hs:halter/hs:person/xgb:vornme}}\n"
        "      frei: {xpath: \"concat(hs:hundName, '!')\"}\n",
        encoding="utf-8",
    )
    result = run("config", "check", "--config", str(config))
    assert result.returncode == 6, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    new = config / "zz-new.yaml"
    assert lines[0].startswith(
        f"error: {new}:2: routes.0.service: unknown message type 'sondernutzung.antrag.O101'"
    )
    assert lines[1].startswith(
        f"error: {new}:3: routes.1.service: unknown message type 'hundesteuer.anmeldung.O101'"
    )
    assert lines[1].endswith("did you mean 'hundesteuer.anmeldung.0101'?")
    assert lines[2].startswith(
        f"error: {new}:9: mappings.0.fields.halter.xpath: 'hs:halter/hs:persn/xgb:familienname' "
        "names no element of hundesteuer.abmeldung.0102: no 'hs:persn' under hs:halter"
    )
    assert lines[3].startswith(
        f"error: {new}:10: mappings.0.fields.rechnung.args.x: 'hs:halter/hs:person/xgb:vornme'"
    )
    assert len(lines) == 4  # the function call is not second-guessed
    assert run("config", "check", "--config", str(REPO / "deploy" / "config")).returncode == 0
