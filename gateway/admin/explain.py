"""Explain a municipality's configuration: the route a service takes and, per destination,
which file and regional level set each mapping field (``config explain``, the console)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from gateway.mapping.model import FieldSpec
from gateway.mapping.table import Origin
from gateway.municipality import level_of
from gateway.routing.config import GatewayConfig
from gateway.routing.yaml_lines import lines_of


@dataclass(frozen=True)
class FieldOrigin:
    name: str
    summary: str
    """What the field does (``xpath …``, ``const …``), or ``removed``."""
    origin: str
    """File:line and level that set it."""


@dataclass(frozen=True)
class DestinationExplanation:
    destination: str
    adapter: str
    layers: list[str] = field(default_factory=list)
    """The mapping layers, least specific first; empty: no mapping (XML only)."""
    format: str | None = None
    fields: list[FieldOrigin] = field(default_factory=list)


@dataclass(frozen=True)
class Explanation:
    municipality: str
    municipality_name: str
    service: str
    config_version: str
    route: str | None
    """``municipality <prefix> (<level>), service <s> [<file>]``; None: no route."""
    destinations: list[DestinationExplanation]


class _Lines:
    def __init__(self) -> None:
        self._texts: dict[Path, str] = {}

    def describe(self, origin: Origin) -> str:
        text = self._texts.get(origin.path)
        if text is None:
            text = self._texts[origin.path] = origin.path.read_text(encoding="utf-8")
        return origin.describe(lines_of(text, [origin.loc])[0])


def summary(spec: FieldSpec) -> str:
    kind = spec.kind
    if kind == "const":
        text = f"const {json.dumps(spec.const, ensure_ascii=False)}"
    elif kind == "template":
        text = f"template {spec.template!r}"
    elif kind == "fields":
        text = f"object of {', '.join(spec.fields or {})}"
    elif kind == "items":
        text = f"list of {spec.items}" + (f" ({', '.join(spec.fields)})" if spec.fields else "")
    elif kind == "xslt":
        text = f"xslt {spec.xslt}"
    else:
        text = f"xpath {spec.xpath}"
        if spec.type != "string":
            text += f" as {spec.type}" + (f" {spec.format!r}" if spec.format else "")
    if spec.map is not None:
        text += f", value map ({len(spec.map.values)} codes"
        text += f", default {spec.map.default!r})" if spec.map.has_default else ", else error)"
    if spec.when:
        text += f", when {spec.when}"
    return text


def explain(config: GatewayConfig, ags: str, name: str, service: str) -> Explanation:
    """``ags`` is normalised already (``MunicipalityDirectory.normalize``)."""
    route = config.route_key(ags, (service,))
    if route is None:
        return Explanation(ags, name, service, config.version, None, [])
    described = (
        f"municipality {route[0] or '*'} ({level_of(route[0])}), service {route[1]}"
        f" -> {', '.join(config.routes[route])}  [{config.route_sources.get(route, '?')}]"
    )
    lines = _Lines()
    destinations = []
    for destination in config.routes[route]:
        dest = config.destinations[destination]
        mapping = config.mappings.effective(ags, service, destination)
        if mapping is None:
            destinations.append(DestinationExplanation(destination, dest.adapter))
            continue
        fields = []
        for field_name, origin in mapping.origins.items():
            compiled = mapping.fields.get(field_name)
            what = "removed" if compiled is None else summary(compiled.spec)
            fields.append(FieldOrigin(field_name, what, lines.describe(origin)))
        fmt = mapping.format + (f" (root {mapping.xml_root})" if mapping.format == "xml" else "")
        destinations.append(
            DestinationExplanation(
                destination,
                dest.adapter,
                [lines.describe(origin) for origin in mapping.layers],
                fmt,
                fields,
            )
        )
    return Explanation(ags, name, service, config.version, described, destinations)
