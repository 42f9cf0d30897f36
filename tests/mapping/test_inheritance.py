"""One service mapped three ways in the shipped config: Land, Kreis and municipality."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app
from gateway.intake.safe_xml import parse_untrusted
from gateway.routing.config import load_config
from tests.conftest import sample

SERVICE = "hundesteuer.anmeldung.0101"


def payload(config_dir: Path, ags: str, destination: str, message: str) -> bytes:
    cfg = load_config(config_dir)
    tree = parse_untrusted(sample(f"hundesteuer/valid/{message}"))
    result = cfg.mappings.payload(ags, SERVICE, destination, tree)
    assert result is not None
    return result.body


def test_land_default_kreis_override_and_municipality_override(config_dir: Path) -> None:
    # Land default (Stuttgart): JSON, letter codes, bank account, German dates.
    land = json.loads(
        payload(config_dir, "08111000", "stuttgart-steueramt", "anmeldung-stuttgart.xml")
    )
    assert land["geschlecht"] == "M" and land["iban"] == "DE96600501017405518812"
    assert land["beginn"] == "18.10.2025" and "kreis" not in land

    # Kreis Esslingen: key/value, ISO date, the Kreis name; the rest inherited.
    kreis = payload(config_dir, "08116019", "bw-hundesteuer", "anmeldung-esslingen.xml").decode()
    lines = dict(line.split("=", 1) for line in kreis.splitlines())
    assert lines["beginn"] == "2025-10-01" and lines["kreis"] == "Landkreis Esslingen"
    assert lines["geschlecht"] == "M" and lines["iban"] == "DE27611500200102884736"
    assert lines["hund"] == "Rocky"

    # Nürtingen: its own code mapping and no bank account; Kreis and Land parts inherited.
    gemeinde = payload(config_dir, "08116049", "bw-hundesteuer", "anmeldung-nuertingen.xml")
    lines = dict(line.split("=", 1) for line in gemeinde.decode().splitlines())
    assert lines["geschlecht"] == "4"  # wk
    assert "iban" not in lines
    assert lines["kreis"] == "Landkreis Esslingen" and lines["beginn"] == "2025-11-01"


def test_explain_names_file_and_level_per_field(config_dir: Path) -> None:
    result = CliRunner().invoke(
        app, ["config", "explain", "-c", str(config_dir), "-m", "08116049", "-s", SERVICE]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "route: municipality 08 (Land)" in out and "-> bw-hundesteuer" in out
    assert "format: keyvalue" in out
    assert "geschlecht  xpath hs:hund/hs:geschlecht/code, value map (4 codes, else error)" in out
    assert "mappings-nuertingen.yaml:8 (municipality 08116049)" in out
    assert "iban        removed" in out
    assert "mappings-kreis-esslingen.yaml:9 (Kreis 08116)" in out
    assert "mappings.yaml:17 (Land 08)" in out


def test_mapping_preview_cli_prints_the_adapter_payload(config_dir: Path) -> None:
    xml = Path(__file__).parents[2] / "schemas/samples/hundesteuer/valid/anmeldung-esslingen.xml"
    # The same message previewed for Nürtingen: municipality level applies.
    result = CliRunner().invoke(
        app, ["mapping", "preview", "-c", str(config_dir), "-m", "08116049", str(xml), "--json"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    (delivery,) = shown["deliveries"]
    assert delivery["destination"] == "bw-hundesteuer" and delivery["format"] == "keyvalue"
    assert "iban" not in delivery["payload"] and delivery["payload"]["geschlecht"] == "1"
