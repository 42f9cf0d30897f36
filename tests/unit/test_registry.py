from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from gateway.errors import InvalidMessage, SchemaRegistryError, UnknownMessageType
from gateway.intake.registry import SchemaRegistry
from gateway.intake.safe_xml import parse_untrusted
from gateway.settings import SHIPPED_SCHEMAS
from tests.conftest import SAMPLES, sample


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.load([SHIPPED_SCHEMAS])


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*/valid/*.xml")), ids=lambda p: p.name)
def test_valid_samples_validate(registry: SchemaRegistry, path: Path) -> None:
    tree = parse_untrusted(path.read_bytes())
    schema_set = registry.identify(tree.getroot())
    schema_set.validate(tree)
    assert etree.QName(tree.getroot()).localname in schema_set.messages


def test_invalid_sample_reports_xpath_line_and_message(registry: SchemaRegistry) -> None:
    tree = parse_untrusted(sample("hundesteuer/invalid/bad-postleitzahl.xml"))
    with pytest.raises(InvalidMessage) as info:
        registry.identify(tree.getroot()).validate(tree)
    (error,) = info.value.errors
    assert error.path.endswith("/hs:halter/hs:anschrift/xgb:postleitzahl")
    assert error.line is not None and error.line > 1
    assert "7011" in error.message


def test_unknown_namespace_is_named(registry: SchemaRegistry) -> None:
    tree = parse_untrusted(b'<x:antrag xmlns:x="urn:unknown"/>')
    with pytest.raises(UnknownMessageType, match="urn:unknown"):
        registry.identify(tree.getroot())


def test_unsupported_version_is_refused(registry: SchemaRegistry) -> None:
    body = sample("hundesteuer/valid/anmeldung-stuttgart.xml").replace(
        b"<hs:hundesteuer.anmeldung.0101 ", b'<hs:hundesteuer.anmeldung.0101 version="9.9" ', 1
    )
    tree = parse_untrusted(body)
    assert tree.getroot().get("version") == "9.9"
    with pytest.raises(UnknownMessageType, match="9.9"):
        registry.identify(tree.getroot())


def test_missing_catalog_url_is_named_and_never_fetched(tmp_path: Path) -> None:
    (tmp_path / "s.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t">'
        '<xs:import namespace="urn:other" schemaLocation="https://127.0.0.1:9/other.xsd"/>'
        '<xs:element name="r"/></xs:schema>'
    )
    (tmp_path / "catalog.yaml").write_text(
        "schema_sets:\n  - {id: t, namespace: 'urn:t', schema: s.xsd}\n"
    )
    with pytest.raises(SchemaRegistryError, match="https://127.0.0.1:9/other.xsd"):
        SchemaRegistry.load([tmp_path])


def test_xbau_baugenehmigung_antrag_validates(xbau_catalog: Path) -> None:
    registry = SchemaRegistry.load([xbau_catalog])
    body = (
        Path(__file__).parents[1] / "data" / "xbau" / "baugenehmigung.antrag.0200.xml"
    ).read_bytes()
    tree = parse_untrusted(body)
    schema_set = registry.identify(tree.getroot())
    assert schema_set.id == "xbau-2.6"
    schema_set.validate(tree)


def _set(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "catalog.yaml").write_text(body, encoding="utf-8")
    return directory


def test_catalog_mistake_is_file_line_key_cause(tmp_path: Path) -> None:
    catalog = _set(
        tmp_path / "c",
        "schema_sets:\n"
        "  - id: t\n"
        '    namespace: "urn:t"\n'
        "    schema: main.xsd\n"
        "    mesages: [r]\n"
        "  - id: u\n"
        "    schema: main.xsd\n",
    )
    with pytest.raises(SchemaRegistryError) as info:
        SchemaRegistry.load([catalog])
    assert info.value.detail == (
        f"{catalog / 'catalog.yaml'}:5: schema_sets.0.mesages: unknown key (and 1 more problem)"
    )
    (catalog / "catalog.yaml").write_text("schema_sets:\n  - id: [\n", encoding="utf-8")
    with pytest.raises(SchemaRegistryError, match=r"catalog\.yaml:3: invalid YAML"):
        SchemaRegistry.load([catalog])


def test_missing_url_names_the_importing_file_and_line_and_the_fix(tmp_path: Path) -> None:
    catalog = _set(
        tmp_path / "c",
        'schema_sets:\n  - {id: t, namespace: "urn:t", schema: main.xsd, messages: [r]}\n',
    )
    xs = 'xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t" xmlns:t="urn:t"'
    (catalog / "main.xsd").write_text(
        f'<xs:schema {xs}>\n  <xs:include schemaLocation="sub/part.xsd"/>\n'
        '  <xs:element name="r" type="t:R"/>\n</xs:schema>\n',
        encoding="utf-8",
    )
    (catalog / "sub").mkdir()
    (catalog / "sub" / "part.xsd").write_text(
        f"<xs:schema {xs}>\n\n"
        '  <xs:import namespace="urn:b" schemaLocation="https://example.org/basis.xsd"/>\n'
        '  <xs:complexType name="R"><xs:sequence/></xs:complexType>\n</xs:schema>\n',
        encoding="utf-8",
    )
    with pytest.raises(SchemaRegistryError) as info:
        SchemaRegistry.load([catalog])
    detail = info.value.detail
    assert detail.startswith(
        f"{catalog / 'sub' / 'part.xsd'}:3: schemaLocation https://example.org/basis.xsd is "
        "not in any catalog (schema set t): add it under `urls:` in "
        f"{catalog / 'catalog.yaml'}"
    ), detail
