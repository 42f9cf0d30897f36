"""Inheritance along the regional key: the effective mapping of one municipality.

Entries for a service are layered from the least to the most specific level: all
municipalities (``*``), Land (2 digits), Regierungsbezirk (3), Kreis (5), municipality (8).
On each level an entry restricted to a destination comes after the general one. Later
layers replace earlier ones field by field; ``null`` removes an inherited field; options
(format, XML root) come from the most specific layer that sets them.

Effective mappings are merged on first use and cached, so a message costs a few dict
lookups whatever the number of municipalities configured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from pydantic import JsonValue

from gateway.mapping.apply import Format, Payload, map_fields, render
from gateway.mapping.codelists import CodeLists
from gateway.mapping.compile import CompiledField, Compiler, SpecError
from gateway.mapping.model import MappingConfig
from gateway.municipality import level_of, prefixes

_CACHE_LIMIT = 100_000


@dataclass(frozen=True)
class MappingSource:
    """One ``mappings`` entry as read from a file (for compiling and error locations)."""

    path: Path
    text: str
    index: int
    entry: MappingConfig


class MappingSourceError(Exception):
    def __init__(self, source: MappingSource, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.source = source
        self.loc = ("mappings", source.index, *loc)
        self.message = message


@dataclass(frozen=True)
class Origin:
    """Where a layer or field is defined: file, position in it, and regional level."""

    path: Path
    loc: tuple[str | int, ...]
    municipality: str
    destination: str | None

    @property
    def level(self) -> str:
        return level_of(self.municipality)

    def describe(self, line: int | None = None) -> str:
        where = f"{self.path}:{line}" if line else str(self.path)
        scope = f"{self.level} {self.municipality}" if self.municipality else self.level
        if self.destination:
            scope += f", destination {self.destination}"
        return f"{where} ({scope})"


@dataclass(frozen=True)
class Layer:
    origin: Origin
    entry: MappingConfig
    fields: Mapping[str, CompiledField | None]


@dataclass(frozen=True)
class EffectiveMapping:
    service: str
    municipality: str
    destination: str
    format: Format
    xml_root: str
    xml_namespace: str | None
    fields: Mapping[str, CompiledField]
    origins: Mapping[str, Origin]
    layers: Sequence[Origin] = field(default_factory=tuple)

    def apply(self, tree: etree._ElementTree) -> Payload:
        """Raises ``MappingError`` when the message cannot be mapped (e.g. unmapped code)."""
        data: dict[str, JsonValue] = map_fields(self.fields, tree.getroot())
        body = render(data, self.format, self.xml_root, self.xml_namespace)
        return Payload(self.format, data, body)


class MappingTable:
    def __init__(
        self,
        layers: dict[tuple[str, str, str], Layer],
        stylesheet_files: frozenset[Path] = frozenset(),
    ) -> None:
        self._layers = layers
        self.stylesheet_files = stylesheet_files
        """Every XSLT file the mappings read (includes too): part of the config version."""
        self._services = {service for _, service, _ in layers}
        self._cache: dict[tuple[str, str, str], EffectiveMapping | None] = {}

    def __len__(self) -> int:
        return len(self._layers)

    def effective(
        self, municipality: str, service: str, destination: str
    ) -> EffectiveMapping | None:
        """The merged mapping for an AGS, message type and destination; None if unmapped."""
        if service not in self._services:
            return None
        key = (municipality, service, destination)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = self._merge(municipality, service, destination)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found

    def payload(
        self, municipality: str, service: str, destination: str, tree: etree._ElementTree
    ) -> Payload | None:
        """What ``destination`` receives for this message: one code path for worker and preview."""
        mapping = self.effective(municipality, service, destination)
        return mapping.apply(tree) if mapping is not None else None

    def _merge(self, ags: str, service: str, destination: str) -> EffectiveMapping | None:
        layers = [
            layer
            for prefix in reversed(prefixes(ags))
            for dest in ("", destination)
            if (layer := self._layers.get((prefix, service, dest))) is not None
        ]
        if not layers:
            return None
        fields: dict[str, CompiledField] = {}
        origins: dict[str, Origin] = {}
        options: dict[str, object] = {}
        for layer in layers:
            for name, compiled in layer.fields.items():
                if compiled is None:
                    fields.pop(name, None)
                    origins[name] = _field_origin(layer, name)  # the removal is an origin too
                else:
                    fields[name] = compiled
                    origins[name] = _field_origin(layer, name)
            for option in ("format", "xml_root", "xml_namespace"):
                if option in layer.entry.model_fields_set:
                    options[option] = getattr(layer.entry, option)
        # Keep removed fields' origins only for explanation: they are not in ``fields``.
        return EffectiveMapping(
            service=service,
            municipality=ags,
            destination=destination,
            format=options.get("format") or "json",  # type: ignore[arg-type]
            xml_root=str(options.get("xml_root") or "payload"),
            xml_namespace=options.get("xml_namespace"),  # type: ignore[arg-type]
            fields=fields,
            origins=origins,
            layers=tuple(layer.origin for layer in layers),
        )


def _field_origin(layer: Layer, name: str) -> Origin:
    o = layer.origin
    return Origin(o.path, (*o.loc, "fields", name), o.municipality, o.destination)


def build_table(
    sources: Sequence[MappingSource],
    namespaces: Mapping[str, str],
    codelists: CodeLists,
    destinations: Mapping[str, object],
    root: Path | None = None,
) -> MappingTable:
    """Compile every entry; raises ``MappingSourceError`` naming the entry and key.
    ``root``: the configuration directory, which every stylesheet must lie in."""
    compiler = Compiler(namespaces, codelists, root)
    layers: dict[tuple[str, str, str], Layer] = {}
    for source in sources:
        entry = source.entry
        if entry.destination is not None and entry.destination not in destinations:
            raise MappingSourceError(
                source, ("destination",), f"unknown destination '{entry.destination}'"
            )
        key = (entry.municipality, entry.service, entry.destination or "")
        if key in layers:
            first = layers[key].origin.path
            raise MappingSourceError(
                source,
                (),
                f"service '{entry.service}', municipality '{entry.municipality or '*'}'"
                + (f", destination '{entry.destination}'" if entry.destination else "")
                + f" already has a mapping in {first}",
            )
        try:
            fields = compiler.fields(entry.fields, source.path.parent, ("fields",))
        except SpecError as exc:
            raise MappingSourceError(source, exc.loc, exc.message) from None
        origin = Origin(
            source.path, ("mappings", source.index), entry.municipality, entry.destination
        )
        layers[key] = Layer(origin, entry, fields)
    return MappingTable(layers, frozenset(compiler.stylesheet_files))
