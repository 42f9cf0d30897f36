"""Schema registry: catalogs of schema sets, compiled once, selected by namespace and root.

A catalog is a ``catalog.yaml`` in a directory (the shipped ``schemas/`` or one an operator
adds). It maps absolute ``schemaLocation`` URLs to local files, so that no schema is ever
fetched from the network, and lists schema sets::

    urls:
      "https://example.org/basis.xsd": common/basis.xsd
    schema_sets:
      - id: hundesteuer-1.0
        namespace: https://xoev-gateway.de/schemata/hundesteuer/1_0
        version: "1.0"                 # optional: must equal the root's @version if given
        schema: hundesteuer/hundesteuer.xsd
        messages: [hundesteuer.anmeldung.0101]   # root elements; empty = any
        leika: "99108008001000"        # optional LeiKa key of the service
        schematron: [hundesteuer/hundesteuer.sch]  # optional business rules, run after XSD
        header: basisnachricht-g2g     # how to read the header: a preset or XPaths (header.py)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import ErrorDetail, InvalidMessage, SchemaRegistryError, UnknownMessageType
from gateway.intake.header import HeaderReader, HeaderSpec, resolve_spec
from gateway.intake.schematron import Schematron, SchematronCompiler


class SchemaSetEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    namespace: str
    schema_file: str = Field(alias="schema")
    version: str | None = None
    messages: list[str] = []
    leika: str | None = Field(default=None, pattern=r"^\d{14}$")
    schematron: list[str] = []
    header: str | HeaderSpec | None = None
    """A preset name (default ``basisnachricht-g2g``) or the header's XPaths."""


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: dict[str, str] = {}
    schema_sets: list[SchemaSetEntry] = []


class _CatalogResolver(etree.Resolver):
    """Resolves absolute schema URLs through the catalog and refuses everything remote."""

    def __init__(self, urls: dict[str, Path]) -> None:
        super().__init__()
        self.urls = urls

    def resolve(self, system_url: str | None, public_id: str | None, context: Any) -> Any:
        if system_url is None:
            return None
        local = self.urls.get(system_url)
        if local is not None:
            return self.resolve_filename(str(local), context)
        if system_url.startswith(("http://", "https://", "ftp://")):
            raise SchemaRegistryError(
                f"schema URL {system_url} is not in any catalog; add it to a catalog.yaml "
                "'urls' map (the registry never fetches from the network)"
            )
        return None


@dataclass
class SchemaSet:
    id: str
    namespace: str
    version: str | None
    messages: frozenset[str]
    leika: str | None
    path: Path
    schema: etree.XMLSchema = field(repr=False)
    rules: tuple[Schematron, ...] = field(default=(), repr=False)
    header: HeaderReader = field(
        default_factory=lambda: HeaderReader(*resolve_spec(None), "default"), repr=False
    )

    def validate(self, tree: etree._ElementTree) -> None:
        """XSD first; the business rules only run on a schema-valid message."""
        if not self.schema.validate(tree):
            errors = [
                ErrorDetail(path=e.path or "/", line=e.line or None, message=e.message)
                for e in self.schema.error_log
            ]
            count = len(errors)
            raise InvalidMessage(
                f"{count} schema violation{'s' if count != 1 else ''} against {self.id}", errors
            )
        errors = [
            ErrorDetail(f.path, f.line, f"[{f.id}] {f.message}" if f.id else f.message)
            for rules in self.rules
            for f in rules.check(tree)
            if f.blocking
        ]
        if errors:
            count = len(errors)
            raise InvalidMessage(
                f"{count} business-rule violation{'s' if count != 1 else ''} against {self.id}",
                errors,
            )


class SchemaRegistry:
    """All schema sets of the shipped and operator catalogs, compiled once at start-up."""

    def __init__(self, sets: Iterable[SchemaSet]) -> None:
        self._by_key: dict[tuple[str, str], list[SchemaSet]] = {}
        self._any_root: dict[str, list[SchemaSet]] = {}
        self._by_tag: dict[str, list[SchemaSet]] = {}
        self.sets: list[SchemaSet] = list(sets)
        for s in self.sets:
            if s.messages:
                for m in s.messages:
                    self._by_key.setdefault((s.namespace, m), []).append(s)
            else:
                self._any_root.setdefault(s.namespace, []).append(s)

    @classmethod
    def load(cls, directories: Iterable[Path]) -> SchemaRegistry:
        entries, urls = read_catalogs(directories)
        resolver = _CatalogResolver(urls)
        # One Saxon processor for all rule sets, and only if some schema set has rules.
        compiler = SchematronCompiler() if any(e.schematron for _, e in entries) else None
        return cls(_compile(directory, entry, resolver, compiler) for directory, entry in entries)

    def identify(self, root: etree._Element) -> SchemaSet:
        tag = root.tag
        candidates = self._by_tag.get(tag) if isinstance(tag, str) else None
        if candidates is None:
            candidates = self._candidates(root)
        version = root.get("version")
        for candidate in candidates:
            if candidate.version is None or version is None or candidate.version == version:
                return candidate
        local = etree.QName(root).localname
        known = ", ".join(c.version or "?" for c in candidates)
        raise UnknownMessageType(f"'{local}' version {version} is not supported (known: {known})")

    def _candidates(self, root: etree._Element) -> list[SchemaSet]:
        qname = etree.QName(root)
        namespace, local = qname.namespace or "", qname.localname
        exact = self._by_key.get((namespace, local))
        if exact:
            # Remembered by the root's tag: later messages skip the QName split (~1.5 µs).
            # Only declared message types, so that senders cannot grow this dict.
            self._by_tag[str(root.tag)] = exact
            return exact
        candidates = self._any_root.get(namespace)
        if not candidates:
            raise UnknownMessageType(
                f"no schema set for root element '{local}' in namespace '{namespace}'"
            )
        return candidates

    def find(self, message_type: str) -> SchemaSet | None:
        for s in self.sets:
            if message_type in s.messages:
                return s
        return None


def read_catalogs(
    directories: Iterable[Path],
) -> tuple[list[tuple[Path, SchemaSetEntry]], dict[str, Path]]:
    """The schema set entries of all catalogs (with their directory) and the URL map."""
    entries: list[tuple[Path, SchemaSetEntry]] = []
    urls: dict[str, Path] = {}
    for directory in directories:
        catalog_path = directory / "catalog.yaml"
        if not catalog_path.is_file():
            raise SchemaRegistryError(f"{catalog_path}: no catalog.yaml in schema directory")
        try:
            raw = yaml.safe_load(catalog_path.read_text(encoding="utf-8")) or {}
            catalog = CatalogFile.model_validate(raw)
        except (yaml.YAMLError, ValidationError) as exc:
            raise SchemaRegistryError(f"{catalog_path}: {exc}") from None
        for url, rel in catalog.urls.items():
            urls[url] = (directory / rel).resolve()
        entries.extend((directory, e) for e in catalog.schema_sets)
    return entries, urls


def header_reader(entry: SchemaSetEntry) -> HeaderReader:
    """The entry's header spec, resolved against the presets and compiled."""
    try:
        name, spec = resolve_spec(entry.header)
    except SchemaRegistryError as exc:
        raise SchemaRegistryError(f"schema set {entry.id}: {exc.detail}") from None
    return HeaderReader(name, spec, entry.id)


def _compile(
    directory: Path,
    entry: SchemaSetEntry,
    resolver: _CatalogResolver,
    compiler: SchematronCompiler | None,
) -> SchemaSet:
    path = (directory / entry.schema_file).resolve()
    # Schemas are trusted operator input: they may need their own DTD (xmldsig has one),
    # but still never the network.
    parser = etree.XMLParser(no_network=True, load_dtd=True, resolve_entities=True)
    parser.resolvers.add(resolver)
    try:
        doc = etree.parse(str(path), parser)
        schema = etree.XMLSchema(doc)
    except SchemaRegistryError:
        raise
    except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise SchemaRegistryError(f"schema set {entry.id} ({path}): {exc}") from None
    rules: list[Schematron] = []
    for rel in entry.schematron:
        assert compiler is not None  # built by load() whenever an entry lists rules
        try:
            rules.append(compiler.compile((directory / rel).resolve()))
        except SchemaRegistryError as exc:
            raise SchemaRegistryError(f"schema set {entry.id}: {exc.detail}") from None
    return SchemaSet(
        id=entry.id,
        namespace=entry.namespace,
        version=entry.version,
        messages=frozenset(entry.messages),
        leika=entry.leika,
        path=path,
        schema=schema,
        rules=tuple(rules),
        header=header_reader(entry),
    )
