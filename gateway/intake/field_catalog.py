"""Field catalog: every XPath of a message type, with type, cardinality and code list.

Derived from the XSD with xmlschema (the same catalogs as the registry; absolute schema
URLs go through the catalog's ``urls`` map and nothing is fetched). Administrators use it
to see what they can map. Recursive types are cut where a type repeats on the path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xmlschema
import yaml

from gateway.errors import SchemaRegistryError
from gateway.intake.registry import CatalogFile

_Group = xmlschema.validators.XsdGroup
CODELIST_IN_DOCS = re.compile(r"urn:[\w.:-]*codeliste[\w.:-]*\w", re.IGNORECASE)


@dataclass(frozen=True)
class FieldInfo:
    xpath: str
    type: str
    min_occurs: int
    max_occurs: int | None
    codelist: str | None
    choice: str | None = None
    """For a branch of an ``xs:choice``: the alternatives (``a | b``); only one is present."""

    @property
    def cardinality(self) -> str:
        plain = f"{self.min_occurs}..{'n' if self.max_occurs is None else self.max_occurs}"
        return f"{plain} in choice ({self.choice})" if self.choice else plain


@dataclass(frozen=True)
class FieldCatalog:
    message_type: str
    namespaces: dict[str, str]
    fields: list[FieldInfo]


def field_catalog(
    message_type: str, schema_dirs: Iterable[Path], max_depth: int = 30
) -> FieldCatalog:
    schema, urls = _find_schema(message_type, schema_dirs)
    try:
        xsd = xmlschema.XMLSchema(str(schema), uri_mapper=urls, allow="local")
    except xmlschema.XMLSchemaException as exc:
        raise SchemaRegistryError(f"{schema}: {exc}") from None
    root = next((e for e in xsd.maps.elements.values() if e.local_name == message_type), None)
    if root is None:
        raise SchemaRegistryError(f"{schema} declares no element '{message_type}'")
    prefixes = {uri: prefix for prefix, uri in xsd.namespaces.items() if prefix and uri}
    for uri, prefix in list(_used_namespaces(xsd)):
        prefixes.setdefault(uri, prefix)
    top = f"/{_name(root, prefixes)}"
    fields = [FieldInfo(top, _type_name(root.type), 1, 1, None)]
    fields.extend(_walk(root, top, prefixes, (), max_depth))
    namespaces = {p: uri for uri, p in sorted(prefixes.items(), key=lambda item: item[1])}
    return FieldCatalog(message_type, namespaces, fields)


def _find_schema(message_type: str, schema_dirs: Iterable[Path]) -> tuple[Path, dict[str, str]]:
    urls: dict[str, str] = {}
    found: Path | None = None
    for directory in schema_dirs:
        path = directory / "catalog.yaml"
        try:
            catalog = CatalogFile.model_validate(yaml.safe_load(path.read_text("utf-8")) or {})
        except (OSError, yaml.YAMLError, ValueError) as exc:
            raise SchemaRegistryError(f"{path}: {exc}") from None
        urls.update({url: str((directory / rel).resolve()) for url, rel in catalog.urls.items()})
        for entry in catalog.schema_sets:
            if found is None and message_type in entry.messages:
                found = (directory / entry.schema_file).resolve()
    if found is None:
        raise SchemaRegistryError(f"no schema set lists the message type '{message_type}'")
    return found, urls


def _used_namespaces(xsd: Any) -> Iterator[tuple[str, str]]:
    # Imported schemas bring their own prefixes (e.g. xgb for the basis schema).
    for schema in xsd.maps.iter_schemas():
        for prefix, uri in schema.namespaces.items():
            if prefix and uri:
                yield uri, prefix


def _walk(
    element: Any,
    path: str,
    prefixes: dict[str, str],
    seen_types: tuple[Any, ...],
    depth: int,
) -> Iterator[FieldInfo]:
    xsd_type = element.type
    if depth <= 0 or (xsd_type.name is not None and xsd_type in seen_types):
        return
    if xsd_type.is_complex():
        for name, attribute in xsd_type.attributes.items():
            if name is None:
                continue
            local = name.split("}")[-1]
            yield FieldInfo(
                f"{path}/@{local}",
                _type_name(attribute.type),
                1 if attribute.use == "required" else 0,
                1,
                attribute.fixed if local == "listURI" else None,
            )
        content = xsd_type.content if xsd_type.has_complex_content() else ()
        for child, choice in _children(content, None, prefixes):
            if getattr(child, "type", None) is None:  # xs:any: no declared structure
                yield FieldInfo(f"{path}/*", "any", child.min_occurs, child.max_occurs, None)
                continue
            child_path = f"{path}/{_name(child, prefixes)}"
            yield FieldInfo(
                child_path,
                _type_name(child.type),
                child.min_occurs,
                child.max_occurs,
                _codelist(child),
                choice,
            )
            yield from _walk(child, child_path, prefixes, (*seen_types, xsd_type), depth - 1)


def _children(
    group: Any, choice: str | None, prefixes: dict[str, str]
) -> Iterator[tuple[Any, str | None]]:
    """The elements of a content model, each with the ``xs:choice`` it is a branch of."""
    for item in group:
        if isinstance(item, _Group):
            inner = choice
            if item.model == "choice":
                inner = " | ".join(_alternative(alt, prefixes) for alt in item)
            yield from _children(item, inner, prefixes)
        else:
            yield item, choice


def _alternative(item: Any, prefixes: dict[str, str]) -> str:
    if isinstance(item, _Group):
        names = [_alternative(i, prefixes) for i in item]
        return f"({', '.join(names)})" if len(names) > 1 else "".join(names)
    if getattr(item, "type", None) is None:
        return "*"
    return _name(item, prefixes)


def _name(element: Any, prefixes: dict[str, str]) -> str:
    ns = element.target_namespace if element.qualified else ""
    local = element.local_name
    if not ns:
        return str(local)
    return f"{prefixes.get(ns, 'ns')}:{local}"


def _type_name(xsd_type: Any) -> str:
    if xsd_type.name is not None:
        return str(xsd_type.local_name)
    base = getattr(xsd_type, "base_type", None)
    if base is not None and base.name is not None:
        return f"{base.local_name} (derived)"
    return "(anonymous)"


def _codelist(element: Any) -> str | None:
    xsd_type = element.type
    if xsd_type.is_complex():
        attribute = xsd_type.attributes.get("listURI")
        if attribute is not None and attribute.fixed:
            return str(attribute.fixed)
        if attribute is None:
            return None
    else:
        return None
    # A generic Code type: XÖV names the list in the documentation.
    for annotation in (element.annotation, getattr(xsd_type, "annotation", None)):
        if annotation is not None:
            match = CODELIST_IN_DOCS.search(str(annotation))
            if match:
                return f"{match.group(0)} (from documentation)"
    return None
