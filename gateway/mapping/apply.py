"""Runs compiled fields over a parsed message and renders the result (JSON, XML, key/value).

Fields are evaluated against the message's root element (relative XPaths start there; in
repeated groups against each item). A field whose XPath selects nothing is left out unless
it has a ``default`` or is ``required`` (then it is a :class:`MappingError`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

from lxml import etree
from pydantic import JsonValue

from gateway.errors import GatewayError, MappingError
from gateway.intake.safe_xml import parse_untrusted
from gateway.mapping.compile import PLACEHOLDER, CompiledField

Format = Literal["json", "xml", "keyvalue"]
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "xml": "application/xml",
    "keyvalue": "text/plain; charset=utf-8",
}


class XmlFragment(str):
    """An XSLT result that is an XML element: embedded as such in XML output, text elsewhere."""


class _Missing:
    pass


MISSING = _Missing()


@dataclass(frozen=True)
class Payload:
    """What an adapter receives: the structured data and its rendering in ``format``."""

    format: Format
    data: dict[str, JsonValue]
    body: bytes

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def map_fields(
    fields: Mapping[str, CompiledField], node: etree._Element, path: str = ""
) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {}
    for name, compiled in fields.items():
        value = _value(compiled, node, f"{path}{name}")
        if not isinstance(value, _Missing):
            out[name] = value
    return out


def _value(f: CompiledField, node: etree._Element, path: str) -> JsonValue | _Missing:
    if f.when is not None and not _truthy(f.when(node)):
        return MISSING
    spec = f.spec
    if f.kind == "const":
        return spec.const
    if f.kind == "fields":
        return map_fields(f.fields, node, f"{path}.")
    if f.kind == "items":
        assert f.select is not None
        found = f.select(node)
        nodes = found if isinstance(found, list) else [found]
        if not nodes and spec.required:
            raise MappingError(f"field '{path}': no items selected by '{spec.items}'")
        if f.fields:
            return [
                map_fields(f.fields, n, f"{path}[{i}].")
                for i, n in enumerate(nodes)
                if isinstance(n, etree._Element)
            ]
        return [_convert(f, _text(n), path) for n in nodes if _text(n) is not None]  # type: ignore[arg-type]
    if f.kind == "xslt":
        assert f.xslt is not None
        try:
            result = f.xslt(etree.ElementTree(node) if node.getparent() is None else node)
        except etree.XSLTApplyError as exc:
            raise MappingError(f"field '{path}': XSLT failed: {exc}") from None
        root = result.getroot()
        if root is not None:
            return XmlFragment(etree.tostring(root, encoding="unicode"))
        text = str(result).strip()
        return text if text else _absent(f, path)
    if f.kind == "template":
        assert spec.template is not None
        values = {k: _first(x, node) or "" for k, x in f.args.items()}
        text = " ".join(PLACEHOLDER.sub(lambda m: values[m[1]], spec.template).split())
        return text if text else _absent(f, path)
    assert f.select is not None
    raw = _first(f.select, node)
    if raw is None:
        return _absent(f, path)
    return _convert(f, raw, path)


def _absent(f: CompiledField, path: str) -> JsonValue | _Missing:
    if f.spec.has_default:
        return f.spec.default
    if f.spec.required:
        raise MappingError(f"field '{path}' is required but the message has no value for it")
    return MISSING


def _truthy(result: object) -> bool:
    if isinstance(result, list):
        return bool(result)
    return bool(result)


def _first(select: etree.XPath, node: etree._Element) -> str | None:
    result = select(node)
    if isinstance(result, list):
        if not result:
            return None
        result = result[0]
    return _text(result)


def _text(result: object) -> str | None:
    if isinstance(result, etree._Element):
        text = "".join(result.itertext()).strip()
    elif isinstance(result, bool):
        text = "true" if result else "false"
    elif isinstance(result, float):
        text = str(int(result)) if result.is_integer() else str(result)
    else:
        text = str(result).strip()
    return text or None


def _convert(f: CompiledField, raw: str, path: str) -> JsonValue:
    spec = f.spec
    if f.value_map is not None:
        vm = f.value_map
        if raw in vm.values:
            return vm.values[raw]
        if vm.has_default:
            return vm.default
        raise MappingError(f"field '{path}': code '{raw}' is not in the value map")
    try:
        if spec.type == "string":
            return raw
        if spec.type == "boolean":
            if raw not in ("true", "false", "1", "0"):
                raise ValueError(f"'{raw}' is not a boolean")
            return raw in ("true", "1")
        if spec.type == "integer":
            return int(raw)
        if spec.type == "number":
            number = Decimal(raw)
            if spec.format is None and spec.decimal_separator is None:
                return int(number) if number == number.to_integral_value() else float(number)
            text = format(number, spec.format or "")
            return text.replace(".", spec.decimal_separator or ".")
        if spec.type == "date":
            day = date.fromisoformat(raw[:10])
            return day.strftime(spec.format) if spec.format else day.isoformat()
        moment = datetime.fromisoformat(raw)
        return moment.strftime(spec.format) if spec.format else moment.isoformat()
    except (ValueError, InvalidOperation) as exc:
        raise MappingError(f"field '{path}': cannot read '{raw}' as {spec.type}: {exc}") from None


def render(
    data: dict[str, JsonValue], fmt: Format, xml_root: str, xml_namespace: str | None
) -> bytes:
    if fmt == "json":
        return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode()
    if fmt == "keyvalue":
        lines = [f"{key}={value}" for key, value in _flatten(data, "")]
        return ("\n".join(lines) + "\n").encode()
    root = etree.Element(
        etree.QName(xml_namespace, xml_root).text,
        nsmap={None: xml_namespace} if xml_namespace else None,
    )
    _to_xml(root, data, xml_namespace)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _flatten(value: JsonValue, prefix: str) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [
            pair for k, v in value.items() for pair in _flatten(v, f"{prefix}.{k}" if prefix else k)
        ]
    if isinstance(value, list):
        return [pair for i, v in enumerate(value) for pair in _flatten(v, f"{prefix}.{i}")]
    if isinstance(value, bool):
        return [(prefix, "true" if value else "false")]
    text = "" if value is None else str(value)
    # One line per key: line breaks in values are escaped.
    return [(prefix, text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r"))]


def _to_xml(parent: etree._Element, data: dict[str, JsonValue], ns: str | None) -> None:
    for key, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, XmlFragment):
                # The XSLT's result element takes the field's place (it names itself).
                try:
                    parent.append(parse_untrusted(item.encode()).getroot())
                except GatewayError as exc:
                    raise MappingError(f"field '{key}': XSLT result: {exc.detail}") from None
                continue
            try:
                child = etree.SubElement(parent, etree.QName(ns, key).text)
            except ValueError:
                raise MappingError(f"field '{key}' is no valid XML element name") from None
            if isinstance(item, dict):
                _to_xml(child, item, ns)
            elif isinstance(item, bool):
                child.text = "true" if item else "false"
            elif item is not None:
                child.text = str(item)
