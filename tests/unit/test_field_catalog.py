"""The field catalog (``schema fields``) shows the branches of an ``xs:choice`` as such."""

from __future__ import annotations

from pathlib import Path

from gateway.intake.field_catalog import field_catalog

XSD = """<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:c"
           xmlns:c="urn:c" elementFormDefault="qualified">
  <xs:element name="antrag.c.0001">
    <xs:complexType><xs:sequence>
      <xs:element name="id" type="xs:string"/>
      <xs:choice>
        <xs:element name="person" type="xs:string"/>
        <xs:element name="firma" type="xs:string"/>
        <xs:sequence>
          <xs:element name="vorname" type="xs:string"/>
          <xs:element name="name" type="xs:string"/>
        </xs:sequence>
      </xs:choice>
    </xs:sequence></xs:complexType>
  </xs:element>
</xs:schema>
"""


def test_choice_branches_are_shown_as_a_choice(tmp_path: Path) -> None:
    (tmp_path / "c.xsd").write_text(XSD, encoding="utf-8")
    (tmp_path / "catalog.yaml").write_text(
        'schema_sets:\n  - {id: c, namespace: "urn:c", schema: c.xsd, messages: [antrag.c.0001]}\n',
        encoding="utf-8",
    )
    shown = {
        f.xpath.rsplit("/", 1)[-1]: f.cardinality
        for f in field_catalog("antrag.c.0001", [tmp_path]).fields
    }
    assert shown["c:id"] == "1..1"
    alternatives = "c:person | c:firma | (c:vorname, c:name)"
    for name in ("c:person", "c:firma", "c:vorname", "c:name"):
        assert shown[name] == f"1..1 in choice ({alternatives})"
