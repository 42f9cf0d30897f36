"""Validation reports over real HTTP (``xoev-gateway serve``) and in ``validate``: the
same report in a 422 problem, in the status of an accepted submission (warnings) and in
``validate --format json``; a severity override from the catalog."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import header_messages as m
from tests.support.gateway_process import REPO, GatewayProcess, gateway_env

SENDER = {"Authorization": f"Bearer {m.SENDER_TOKEN}", "Content-Type": "application/xml"}
RULES = """<?xml version="1.0" encoding="UTF-8"?>
<sch:schema xmlns:sch="http://purl.oclc.org/dsdl/schematron" queryBinding="xslt2">
  <sch:ns prefix="t" uri="urn:xoev-gateway:test:headers:g2g"/>
  <sch:pattern id="text">
    <sch:rule context="t:antrag.test.0001">
      <sch:assert id="rep-001" test="text != 'verboten'">Der Text ist verboten.</sch:assert>
      <sch:assert id="rep-002" test="string-length(text) gt 10">Der Text ist kurz.</sch:assert>
    </sch:rule>
  </sch:pattern>
</sch:schema>
"""


def catalog(directory: Path, severity: str = "{rep-002: warning}") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.sch").write_text(RULES, encoding="utf-8")
    (directory / "catalog.yaml").write_text(
        "schema_sets:\n"
        "  - id: test-reports\n"
        f"    namespace: {m.NS}g2g\n"
        f"    schema: {m.HEADERS_DIR / 'g2g.xsd'}\n"
        "    messages: [antrag.test.0001]\n"
        "    schematron: [rules.sch]\n"
        f"    severity: {severity}\n",
        encoding="utf-8",
    )
    return directory


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("reports")
    config = root / "config"
    shutil.copytree(REPO / "deploy" / "config", config)
    (config / "headers.yaml").write_text(m.config_yaml(root / "out"), encoding="utf-8")
    return config, catalog(root / "schemas")


@pytest.fixture(scope="module")
def client(setup: tuple[Path, Path]) -> Iterator[httpx.Client]:
    config, schemas = setup
    env = gateway_env(
        config.parent / "data",
        config,
        XOEV_GATEWAY_SCHEMA_DIRS=json.dumps([str(schemas)]),
        # The report must come back from an intake process (pickled) as well.
        XOEV_GATEWAY_INTAKE_PROCESSES="1",
    )
    proc = GatewayProcess("serve", env, config.parent / "serve.log")
    try:
        proc.wait_ready()
        with httpx.Client(base_url=proc.url, timeout=30) as c:
            yield c
    finally:
        proc.stop()


def validate_json(setup: tuple[Path, Path], path: Path) -> dict[str, Any]:
    config, schemas = setup
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "validate",
            "--format",
            "json",
            "--config",
            str(config),
            "--schemas",
            str(schemas),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    (one,) = json.loads(result.stdout)
    return one  # type: ignore[no-any-return]


def test_warning_is_accepted_and_shown_in_the_status(
    client: httpx.Client, setup: tuple[Path, Path], tmp_path: Path
) -> None:
    body = m.g2g()  # text "Hallo": short, rep-002 downgraded to a warning
    answer = client.post("/v1/submissions", content=body, headers=SENDER)
    assert answer.status_code == 202, answer.text
    view = client.get(answer.headers["location"], headers=SENDER).json()
    report = view["validation"]
    assert report["accepted"] is True
    assert report["sha256"] == hashlib.sha256(body).hexdigest()
    assert [s["outcome"] for s in report["steps"]] == ["passed", "passed", "passed"]
    assert [s["name"] for s in report["steps"]] == [
        "well-formedness",
        "xsd",
        "schematron:rules.sch",
    ]
    (finding,) = report["findings"]
    assert finding["severity"] == "warning" and finding["code"] == "rep-002"
    assert finding["path"] == "/t:antrag.test.0001[1]" and finding["line"] == 2
    # validate --format json gives the same report.
    (tmp_path / "m.xml").write_bytes(body)
    assert validate_json(setup, tmp_path / "m.xml")["report"] == report


def test_rules_run_on_a_schema_invalid_message_and_the_problem_has_the_report(
    client: httpx.Client, setup: tuple[Path, Path], tmp_path: Path
) -> None:
    body = m.g2g().replace(b"<text>Hallo</text>", b"<text>verboten</text><extra/>")
    answer = client.post("/v1/submissions", content=body, headers=SENDER)
    assert answer.status_code == 422
    problem = answer.json()
    report = problem["report"]
    assert report["accepted"] is False and report["sha256"] == hashlib.sha256(body).hexdigest()
    assert [(s["name"], s["outcome"]) for s in report["steps"]] == [
        ("well-formedness", "passed"),
        ("xsd", "failed"),
        ("schematron:rules.sch", "failed"),
    ]
    codes = [(f["step"], f["severity"], f["code"]) for f in report["findings"]]
    assert codes == [
        ("xsd", "error", "SCHEMAV_ELEMENT_CONTENT"),
        ("schematron:rules.sch", "error", "rep-001"),
        ("schematron:rules.sch", "warning", "rep-002"),
    ]
    xsd = report["findings"][0]
    assert xsd["path"] == "/t:antrag.test.0001/extra" and xsd["line"] == 11
    # The member older clients read: errors only, rule findings prefixed with their id.
    assert [e["message"][:9] for e in problem["errors"]][1] == "[rep-001]"
    assert len(problem["errors"]) == 2
    assert (
        problem["detail"] == "1 schema violation and 1 business-rule violation against test-reports"
    )
    (tmp_path / "m.xml").write_bytes(body)
    shown = validate_json(setup, tmp_path / "m.xml")
    assert shown["report"] == report and shown["failed_check"] == "validation"


def test_malformed_xml_has_a_report_naming_the_libxml2_error(client: httpx.Client) -> None:
    answer = client.post("/v1/submissions", content=b"<a>\n<b></a>", headers=SENDER)
    assert answer.status_code == 400
    report = answer.json()["report"]
    assert [(s["name"], s["outcome"]) for s in report["steps"]] == [
        ("well-formedness", "failed"),
        ("xsd", "skipped"),
        ("schematron", "skipped"),
    ]
    (finding,) = report["findings"]
    assert finding["code"] == "ERR_TAG_NAME_MISMATCH" and finding["line"] == 2


def test_unknown_rule_id_in_severity_is_refused(tmp_path: Path) -> None:
    schemas = catalog(tmp_path / "schemas", severity="{rep-009: warning}")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "validate",
            "--schemas",
            str(schemas),
            str(REPO / "schemas/samples/hundesteuer/valid/anmeldung-koeln.xml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode != 0
    assert "schema set test-reports: severity: no rule with id rep-009" in result.stderr


def test_schema_catalogs_reload_with_the_config_and_a_broken_one_is_refused(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "deploy" / "config", config)
    (config / "headers.yaml").write_text(m.config_yaml(tmp_path / "out"), encoding="utf-8")
    schemas = catalog(tmp_path / "schemas", severity="{}")  # rep-002 is an error
    env = gateway_env(
        tmp_path / "data",
        config,
        XOEV_GATEWAY_SCHEMA_DIRS=str(schemas),
        XOEV_GATEWAY_INTAKE_PROCESSES="1",
    )
    admin = {"Authorization": "Bearer demo-admin-token"}
    proc = GatewayProcess("serve", env, tmp_path / "serve.log")
    try:
        proc.wait_ready()
        with httpx.Client(base_url=proc.url, timeout=30) as client:
            assert (
                client.post("/v1/submissions", content=m.g2g(), headers=SENDER).status_code == 422
            )
            catalog(schemas)  # rep-002 becomes a warning
            reloaded = client.post("/v1/admin/config/reload", headers=admin)
            assert reloaded.status_code == 200, reloaded.text
            answer = client.post("/v1/submissions", content=m.g2g(), headers=SENDER)
            assert answer.status_code == 202, answer.text

            # A broken catalog is refused like a broken config; the active one stays.
            (schemas / "catalog.yaml").write_text(
                "schema_sets:\n  - id: test-reports\n    colour: red\n", encoding="utf-8"
            )
            refused = client.post("/v1/admin/config/reload", headers=admin)
            assert refused.status_code == 422
            assert refused.json()["detail"].startswith(
                f"{schemas / 'catalog.yaml'}:2: schema_sets.0.namespace: required key missing"
            ), refused.json()
            answer = client.post("/v1/submissions", content=m.g2g(), headers=SENDER)
            assert answer.status_code == 202, answer.text
    finally:
        proc.stop()
