from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from bench.scale import SERVICE, municipality_keys, write_scale_config
from gateway.cli import app
from gateway.intake.safe_xml import parse_untrusted
from gateway.routing.config import load_config
from tests.conftest import sample

REPO = Path(__file__).parents[2]


def test_config_for_every_municipality_loads_and_resolves(tmp_path: Path) -> None:
    keys = municipality_keys(REPO / "schemas" / "codelists" / "ags.tsv")
    assert len(keys) > 10_000
    # JSON keeps the test fast; bench/config_scale.py measures YAML and JSON.
    write_scale_config(tmp_path, keys, "json")
    cfg = load_config(tmp_path)
    assert len(cfg.mappings) == len(keys) + 1
    for ags in (keys[0], "08116049", "09162000", keys[-1]):
        assert cfg.resolve(ags, (SERVICE,)) == (f"m-{ags}",)
        mapping = cfg.mappings.effective(ags, SERVICE, f"m-{ags}")
        assert mapping is not None and list(mapping.fields) == [
            "hund",
            "name",
            "geschlecht",
            "gemeinde",
        ]
    payload = cfg.mappings.payload(
        "08116049",
        SERVICE,
        "m-08116049",
        parse_untrusted(sample("hundesteuer/valid/anmeldung-nuertingen.xml")),
    )
    assert payload is not None
    assert payload.data == {
        "hund": "Emma",
        "name": "Bräuninger",
        "geschlecht": "WK",
        "gemeinde": "08116049",
    }
    assert cfg.resolve("08116049", ("other.service",)) == ()


def test_field_catalog_of_a_sample_message() -> None:
    result = CliRunner().invoke(app, ["schema", "fields", "hundesteuer.anmeldung.0101"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "#   hs: https://xoev-gateway.de/schemata/hundesteuer/1_0" in out
    assert (
        "/hs:hundesteuer.anmeldung.0101/hs:hund/hs:geschlecht\tCode.GeschlechtTier\t1..1\t"
        "urn:xoev-gateway:codeliste:geschlecht-tier\n" in out
    )
    assert "/hs:hundesteuer.anmeldung.0101/hs:anlagen/xgb:anlage\tAnlage\t1..n\t\n" in out
    assert "/hs:hundesteuer.anmeldung.0101/hs:hund/hs:geschlecht/code\ttoken\t1..1\t\n" in out
    abmeldung = CliRunner().invoke(app, ["schema", "fields", "hundesteuer.abmeldung.0102"])
    assert (
        "hs:grund\tCode\t1..1\turn:xoev-gateway:codeliste:hundesteuer-abmeldegrund "
        "(from documentation)" in abmeldung.output
    )


def test_field_catalog_of_xbau(xbau_catalog: Path) -> None:
    result = CliRunner().invoke(
        app, ["schema", "fields", "baugenehmigung.antrag.0200", "--schemas", str(xbau_catalog)]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) > 1000
    assert any(
        line.endswith("\turn:xoev-de:xbau:codeliste:xbau-nachrichten")
        and "/nachrichtenkopf.g2g/identifikation.nachricht/nachrichtentyp\t" in line
        for line in lines
    )


def test_unknown_message_type_is_named() -> None:
    result = CliRunner().invoke(app, ["schema", "fields", "nosuch.message"])
    assert result.exit_code == 7
    assert "no schema set lists the message type 'nosuch.message'" in result.output
