"""``xoev-gateway codelists import`` with the real XRepository files of ../shared/xoev:
checked, versioned, used as the municipality list, picked up by a reload; value maps that
name codes a new version dropped are refused (``--force``: ``config check`` reports them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from lxml import etree

from tests.conftest import SHARED_XOEV, sample
from tests.support.gateway_process import REPO, GatewayProcess, gateway_env

CODELISTS = SHARED_XOEV / "codelists"
AGS = CODELISTS / "urn_de_bund_destatis_bevoelkerungsstatistik_schluessel_ags_2026-06-30.xml"
AGS_ACTIVE = "urn_de_bund_destatis_bevoelkerungsstatistik_schluessel_ags.xml"
GESCHLECHT = REPO / "schemas" / "codelists" / "urn_xoev-gateway_codeliste_geschlecht-tier_1.0.xml"
KOELN = "05315000"

pytestmark = pytest.mark.skipif(not AGS.is_file(), reason=f"{AGS} is not checked out")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XOEV_GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env=env,
    )


def edited(source: Path, target: Path, version: str, drop: str) -> Path:
    """A later version of a list without the row whose key is ``drop``."""
    tree = etree.parse(str(source))
    root = tree.getroot()
    ident = root.find("Identification")
    assert ident is not None
    old = ident.findtext("Version") or ""
    for name in ("Version", "CanonicalVersionUri"):
        node = ident.find(name)
        assert node is not None and node.text is not None
        node.text = node.text.replace(old, version)
    for row in root.iterfind("SimpleCodeList/Row"):
        if any(v.findtext("SimpleValue") == drop for v in row):
            row.getparent().remove(row)  # type: ignore[union-attr]
    tree.write(str(target), xml_declaration=True, encoding="UTF-8")
    return target


@pytest.fixture
def config(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(REPO / "deploy" / "config", target)
    return target


def test_the_ags_list_is_imported_versioned_and_becomes_the_municipality_list(
    config: Path, tmp_path: Path
) -> None:
    result = run("codelists", "import", "--config", str(config), str(AGS))
    assert result.returncode == 0, result.stderr
    assert "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:ags_2026-06-30" in result.stdout
    assert "11227 codes; new list" in result.stdout
    active = config / "codelists" / AGS_ACTIVE
    assert active.read_bytes() == AGS.read_bytes()
    assert (config / "codelists" / "versions" / AGS.name).read_bytes() == AGS.read_bytes()

    # A later version without Köln: Köln's messages have no municipality any more.
    later = edited(AGS, tmp_path / "ags-later.xml", "2026-12-31", KOELN)
    result = run("codelists", "import", "--config", str(config), str(later))
    assert result.returncode == 0, result.stderr
    assert "replaces urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:ags_2026-06-30" in (
        result.stdout
    )
    assert len(list((config / "codelists" / "versions").glob("*.xml"))) == 2
    koeln = REPO / "schemas" / "samples" / "hundesteuer" / "valid" / "anmeldung-koeln.xml"
    checked = run("validate", "--config", str(config), str(koeln))
    assert checked.returncode == 2
    assert (
        "unknown-recipient: recipient 'ags:05315000' (AGS 05315000) is not in the municipality "
        "key list urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:ags_2026-12-31"
    ) in checked.stdout


def test_a_list_that_drops_mapped_codes_is_refused_or_reported_by_config_check(
    config: Path, tmp_path: Path
) -> None:
    later = edited(GESCHLECHT, tmp_path / "geschlecht-2.0.xml", "2.0", "mk")
    refused = run("codelists", "import", "--config", str(config), str(later))
    assert refused.returncode == 10
    assert refused.stderr.startswith(
        "error: the configuration would be refused with urn:xoev-gateway:codeliste:geschlecht-tier_2.0: "
    )
    assert (
        "code 'mk' is not in code list urn:xoev-gateway:codeliste:geschlecht-tier" in refused.stderr
    )
    assert not (config / "codelists").exists()

    forced = run("codelists", "import", "--force", "--config", str(config), str(later))
    assert forced.returncode == 0, forced.stderr
    assert forced.stderr.startswith("warning: the configuration refuses it until fixed")
    check = run("config", "check", "--config", str(config))
    assert check.returncode == 6
    assert (
        "code 'mk' is not in code list urn:xoev-gateway:codeliste:geschlecht-tier" in check.stderr
    )


def test_a_broken_genericode_file_is_refused_with_the_line(config: Path, tmp_path: Path) -> None:
    text = GESCHLECHT.read_text(encoding="utf-8").replace(
        "<SimpleValue>w</SimpleValue>", "<SimpleValue>m</SimpleValue>"
    )
    broken = tmp_path / "dup.xml"
    broken.write_text(text, encoding="utf-8")
    line = text[: text.index("<SimpleValue>m</SimpleValue>", text.index("<Row>") + 60)].count("\n")
    result = run("codelists", "import", "--config", str(config), str(broken))
    assert result.returncode == 10
    assert result.stderr.strip() == f"error: {broken}:{line}: code 'm' appears twice"
    not_gc = tmp_path / "x.xml"
    not_gc.write_text("<liste/>", encoding="utf-8")
    result = run("codelists", "import", "--config", str(config), str(not_gc))
    assert result.returncode == 10 and "not a genericode CodeList" in result.stderr


def test_an_imported_ags_list_is_picked_up_by_reload(config: Path, tmp_path: Path) -> None:
    env = gateway_env(tmp_path / "data", config)
    proc = GatewayProcess("serve", env, tmp_path / "serve.log")
    headers = {"Authorization": "Bearer demo-sender-token", "Content-Type": "application/xml"}
    admin = {"Authorization": "Bearer demo-admin-token"}
    body = sample("hundesteuer/valid/anmeldung-koeln.xml")
    try:
        proc.wait_ready()
        with httpx.Client(base_url=proc.url, timeout=30) as client:
            assert client.post("/v1/submissions", content=body, headers=headers).status_code == 202
            later = edited(AGS, tmp_path / "ags-later.xml", "2026-12-31", KOELN)
            assert run("codelists", "import", "--config", str(config), str(later)).returncode == 0
            assert client.post("/v1/admin/config/reload", headers=admin).status_code == 200
            other = body.replace(b"3fa2714e-c38c", b"3fa2714e-c38d")  # another message
            answer = client.post("/v1/submissions", content=other, headers=headers)
            assert answer.status_code == 422
            assert answer.json()["type"].endswith("/unknown-recipient")
    finally:
        proc.stop()
