"""Broken mapping configs are refused with file, line, key and cause."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.errors import ConfigError
from gateway.routing.config import load_config

BASE = """namespaces:
  hs: https://xoev-gateway.de/schemata/hundesteuer/1_0
mappings:
  - service: hundesteuer.anmeldung.0101
    fields:
"""


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            "      name: zz:hund/zz:name\n",
            r"m.yaml:6: mappings\.0\.fields\.name\.xpath: undeclared namespace prefix zz",
        ),
        (
            "      g:\n        xpath: hs:hund/hs:geschlecht/code\n        map:\n"
            "          codelist: urn:xoev-gateway:codeliste:geschlecht-tier\n"
            "          values: {m: M, w: W, mk: MK}\n",
            r"m.yaml:10: mappings\.0\.fields\.g\.map\.values: misses code 'wk' of code list "
            r"urn:xoev-gateway:codeliste:geschlecht-tier",
        ),
        (
            "      g: {xpath: x, map: {codelist: urn:xoev-gateway:codeliste:geschlecht-tier,"
            " values: {m: M, w: W, mk: MK, wk: WK, q: Q}}}\n",
            r"mappings\.0\.fields\.g\.map\.values\.q: code 'q' is not in code list",
        ),
        ("      t: {template: '{a}'}\n", r"fields\.t\.template: placeholder \{a\} has no XPath"),
        ("      x: {xpath: a, const: b}\n", r"m.yaml:6: mappings\.0\.fields\.x.*exactly one of"),
        ("      x: {xpath: 'a['}\n", r"fields\.x\.xpath: invalid XPath 'a\['"),
        ("      x: {xslt: nosuch.xsl}\n", r"fields\.x\.xslt: cannot compile XSLT"),
        (
            "      x: {xpath: a, colour: red}\n",
            r"m.yaml:6: mappings\.0\.fields\.x\.colour: unknown key",
        ),
        ("      x: [unclosed\n", r"m.yaml:7: invalid YAML"),
    ],
)
def test_refused_with_file_line_and_key(tmp_path: Path, fields: str, expected: str) -> None:
    (tmp_path / "m.yaml").write_text(BASE + fields, encoding="utf-8")
    with pytest.raises(ConfigError, match=expected):
        load_config(tmp_path)


def test_unknown_destination_and_duplicate_level(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        "mappings:\n  - {service: s, municipality: '08', destination: nosuch}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"m.yaml:2: mappings\.0\.destination: unknown"):
        load_config(tmp_path)
    (tmp_path / "m.yaml").write_text(
        "mappings:\n  - {service: s, municipality: '08'}\n  - {service: s, municipality: '08'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"m.yaml:3: mappings\.1: .*already has a mapping"):
        load_config(tmp_path)


def test_config_test_shows_a_readable_diff_when_a_mapping_changes(config_dir: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["config", "test", "-c", str(config_dir)])
    assert ok.exit_code == 0, ok.output
    assert "5 passed, 0 failed" in ok.output

    override = config_dir / "mappings-nuertingen.yaml"
    override.write_text(override.read_text().replace('wk: "4"', 'wk: "9"'), encoding="utf-8")
    failed = runner.invoke(app, ["config", "test", "-c", str(config_dir)])
    assert failed.exit_code == 1
    assert "FAIL anmeldung-nuertingen.xml -> bw-hundesteuer: output differs" in failed.output
    assert "-geschlecht=4\n+geschlecht=9\n" in failed.output
    assert "4 passed, 1 failed" in failed.output


def test_config_test_update_writes_expected_outputs(config_dir: Path) -> None:
    cases = config_dir / "mapping-tests"
    (cases / "anmeldung-esslingen.bw-hundesteuer.txt").unlink()
    runner = CliRunner()
    missing = runner.invoke(app, ["config", "test", "-c", str(config_dir)])
    assert missing.exit_code == 1 and "run with --update" in missing.output
    updated = runner.invoke(app, ["config", "test", "-c", str(config_dir), "--update"])
    assert (
        updated.exit_code == 0 and "wrote anmeldung-esslingen.bw-hundesteuer.txt" in updated.output
    )


def test_published_json_schema_is_current(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    result = CliRunner().invoke(app, ["config", "schema", "-o", str(out)])
    assert result.exit_code == 0, result.output
    shipped = Path(__file__).parents[2] / "deploy" / "config" / "config.schema.json"
    assert out.read_text() == shipped.read_text(), "run: xoev-gateway config schema -o " + str(
        shipped
    )


def test_shipped_config_with_own_codelist_dir(tmp_path: Path, config_dir: Path) -> None:
    # An operator's code list in <config>/codelists makes incomplete value maps fail too.
    shutil.copytree(config_dir, tmp_path / "c")
    (tmp_path / "c" / "codelists").mkdir()
    shutil.copy(
        Path(__file__).parents[2]
        / "schemas/codelists/urn_xoev-gateway_codeliste_geschlecht-tier_1.0.xml",
        tmp_path / "c" / "codelists" / "gt.xml",
    )
    text = (tmp_path / "c" / "codelists" / "gt.xml").read_text()
    (tmp_path / "c" / "codelists" / "gt.xml").write_text(
        text.replace("geschlecht-tier</CanonicalUri>", "geschlecht-tier</CanonicalUri>").replace(
            "<SimpleCodeList>",
            '<SimpleCodeList><Row><Value ColumnRef="code">'
            "<SimpleValue>x</SimpleValue></Value></Row>",
        ),
        encoding="utf-8",
    )
    with pytest.raises(
        ConfigError,
        match=r"\.yaml:\d+: mappings\.0\.fields\.geschlecht\.map\.values: misses code 'x'",
    ):
        load_config(tmp_path / "c")
