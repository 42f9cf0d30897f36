"""The mapping language, one feature per test, on tiny configs built inline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.errors import MappingError
from gateway.intake.safe_xml import parse_untrusted
from gateway.routing.config import load_config
from tests.conftest import sample

NS = """
namespaces:
  hs: https://xoev-gateway.de/schemata/hundesteuer/1_0
  xgb: https://xoev-gateway.de/schemata/basis/1_0
destinations:
  d: {adapter: filedrop, settings: {directory: out}}
"""
ESSLINGEN = "hundesteuer/valid/anmeldung-esslingen.xml"


def mapped(tmp_path: Path, mapping: str, message: str = ESSLINGEN, ags: str = "08116019") -> bytes:
    (tmp_path / "c.yaml").write_text(NS + "mappings:\n" + mapping, encoding="utf-8")
    cfg = load_config(tmp_path)
    payload = cfg.mappings.payload(
        ags, "hundesteuer.anmeldung.0101", "d", parse_untrusted(sample(message))
    )
    assert payload is not None
    return payload.body


def as_json(tmp_path: Path, fields: str, **kw: str) -> dict[str, object]:
    body = mapped(tmp_path, f"  - service: hundesteuer.anmeldung.0101\n    fields:\n{fields}", **kw)
    result: dict[str, object] = json.loads(body)
    return result


def test_xpath_const_template_dates_numbers_and_conditionals(tmp_path: Path) -> None:
    out = as_json(
        tmp_path,
        """      name: hs:halter/hs:person/xgb:familienname
      art: {const: 7}
      voll: {template: "{v} {f}", args: {v: hs:halter/hs:person/xgb:vorname, f: hs:halter/hs:person/xgb:familienname}}
      geboren: {xpath: hs:halter/hs:person/xgb:geburtsdatum, type: date, format: "%d.%m.%Y"}
      betrag: {xpath: "string-length(hs:hund/hs:name) * 30.5", type: number, format: ".2f", decimal_separator: ","}
      kampf: {const: ja, when: "hs:hund/hs:listenhund = 'true'"}
      nie: {const: x, when: "hs:hund/hs:listenhund = 'false'"}
      fehlt: hs:hund/hs:gibtsnicht
      ersatz: {xpath: hs:hund/hs:gibtsnicht, default: "-"}
      listenhund: {xpath: hs:hund/hs:listenhund, type: boolean}
""",
    )
    assert out == {
        "name": "Yıldız",
        "art": 7,
        "voll": "Meryem Yıldız",
        "geboren": "22.07.1991",
        "betrag": "152,50",
        "kampf": "ja",
        "ersatz": "-",
        "listenhund": True,
    }


def test_repeated_groups_and_nested_objects(tmp_path: Path) -> None:
    out = as_json(
        tmp_path,
        """      anlagen: {items: hs:anlagen/xgb:anlage, fields: {datei: xgb:dateiname}}
      namen: {items: hs:anlagen/xgb:anlage/xgb:dateiname}
      halter: {fields: {ort: hs:halter/hs:anschrift/xgb:ort}}
""",
    )
    assert out == {
        "anlagen": [{"datei": "Wesenstest_Rocky.pdf"}, {"datei": "Sachkundenachweis.pdf"}],
        "namen": ["Wesenstest_Rocky.pdf", "Sachkundenachweis.pdf"],
        "halter": {"ort": "Esslingen am Neckar"},
    }


def test_value_map_default_and_error_for_unmapped_codes(tmp_path: Path) -> None:
    out = as_json(
        tmp_path,
        "      rasse: {xpath: hs:hund/hs:rasse/code, map: {values: {'1': A}, default: SONST}}\n",
    )
    assert out == {"rasse": "SONST"}
    with pytest.raises(MappingError, match=r"field 'rasse': code '286' is not in the value map"):
        as_json(tmp_path, "      rasse: {xpath: hs:hund/hs:rasse/code, map: {values: {'1': A}}}\n")


def test_required_field_without_value_is_a_mapping_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="field 'x' is required"):
        as_json(tmp_path, "      x: {xpath: hs:nichts, required: true}\n")


def test_xml_and_keyvalue_output(tmp_path: Path) -> None:
    body = mapped(
        tmp_path,
        """  - service: hundesteuer.anmeldung.0101
    format: xml
    xml_root: Antrag
    xml_namespace: urn:fv
    fields:
      Hund: hs:hund/hs:name
      Anlage: {items: hs:anlagen/xgb:anlage, fields: {Datei: xgb:dateiname}}
""",
    )
    assert body.decode() == (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<Antrag xmlns="urn:fv">\n  <Hund>Rocky</Hund>\n'
        "  <Anlage>\n    <Datei>Wesenstest_Rocky.pdf</Datei>\n  </Anlage>\n"
        "  <Anlage>\n    <Datei>Sachkundenachweis.pdf</Datei>\n  </Anlage>\n</Antrag>\n"
    )
    body = mapped(
        tmp_path,
        """  - service: hundesteuer.anmeldung.0101
    format: keyvalue
    fields:
      hund: hs:hund/hs:name
      a: {items: hs:anlagen/xgb:anlage/xgb:dateiname}
      text: {const: "zwei\\nZeilen"}
""",
    )
    assert body.decode() == (
        "hund=Rocky\na.0=Wesenstest_Rocky.pdf\na.1=Sachkundenachweis.pdf\ntext=zwei\\nZeilen\n"
    )


def test_xslt_escape_hatch_text_and_xml(tmp_path: Path) -> None:
    (tmp_path / "t.xsl").write_text(
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"'
        ' xmlns:hs="https://xoev-gateway.de/schemata/hundesteuer/1_0">'
        '<xsl:output method="text"/><xsl:template match="/">'
        "<xsl:value-of select=\"translate(/*/hs:hund/hs:name, 'ocky', 'OCKY')\"/>"
        "</xsl:template></xsl:stylesheet>",
        encoding="utf-8",
    )
    assert as_json(tmp_path, "      gross: {xslt: t.xsl}\n") == {"gross": "ROCKY"}


def test_shipped_xslt_result_element_takes_the_fields_place(config_dir: Path) -> None:
    cfg = load_config(config_dir)
    payload = cfg.mappings.payload(
        "08111000",
        "bewohnerparken.antrag.0201",
        "stuttgart-steueramt",
        parse_untrusted(sample("bewohnerparken/valid/antrag-stuttgart.xml")),
    )
    assert payload is not None and payload.format == "xml"
    assert b"<Adresse>\n    <Zeile1>Bismarckstra\xc3\x9fe 71</Zeile1>" in payload.body
