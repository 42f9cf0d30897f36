"""Configuration against the schema catalogs: routes and mappings that name message types
no schema set knows, and mapping XPaths that name elements the message type does not have.

The config loader checks the configuration in itself (keys, types, XPath syntax, value
maps); it does not know the schemas. Without this check a route for
``sondernutzung.antrag.O101`` (letter O) loads fine and fails only at run time with
``no-route``. Each problem is one line, ``file:line: key: cause``, like the loader's.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.errors import SchemaRegistryError
from gateway.intake.field_catalog import field_catalog
from gateway.intake.registry import SchemaRegistry
from gateway.routing.yaml_lines import lines_of

# A location path of child steps (``a:b/c[1]/@d``); anything else (functions, ``//``,
# axes, operators) is not checked: it may be right in ways a simple lookup cannot see.
_STEP = re.compile(r"^(?:(?P<prefix>[\w.-]+):)?(?P<local>[\w.-]+)(?:\[[^\[\]]*\])?$")
_WILDCARD = "*"


@dataclass(frozen=True)
class _Site:
    path: Path
    text: str
    loc: tuple[str | int, ...]


def known_services(registry: SchemaRegistry) -> dict[str, str]:
    """Message type or LeiKa key -> schema set id."""
    known: dict[str, str] = {}
    for schema_set in registry.sets:
        for message in schema_set.messages or _global_elements(schema_set.path):
            known.setdefault(message, schema_set.id)
        if schema_set.leika:
            known.setdefault(schema_set.leika, schema_set.id)
    return known


def check(config_dir: Path, registry: SchemaRegistry, schema_dirs: Iterable[Path]) -> list[str]:
    """Every problem as ``file:line: key: cause``; empty when the config fits the schemas."""
    known = known_services(registry)
    problems: list[str] = []
    namespaces: dict[str, str] = {}
    documents = []
    for path in _files(config_dir):
        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            continue  # the loader reports it
        if not isinstance(data, dict):
            continue
        namespaces.update({str(k): str(v) for k, v in (data.get("namespaces") or {}).items()})
        documents.append((path, text, data))
    catalogs: dict[str, set[tuple[tuple[str, str], ...]] | None] = {}
    dirs = list(schema_dirs)
    for path, text, data in documents:
        for index, route in enumerate(data.get("routes") or []):
            if isinstance(route, dict):
                site = _Site(path, text, ("routes", index, "service"))
                problems.extend(_service(site, route.get("service"), known))
        for index, mapping in enumerate(data.get("mappings") or []):
            if not isinstance(mapping, dict):
                continue
            service = mapping.get("service")
            site = _Site(path, text, ("mappings", index, "service"))
            unknown = list(_service(site, service, known))
            problems.extend(unknown)
            if unknown or not isinstance(service, str) or service not in known:
                continue
            if service not in catalogs:
                catalogs[service] = _paths(service, dirs)
            paths = catalogs[service]
            if paths is None:
                continue
            for loc, xpath in _xpaths(mapping.get("fields"), ("mappings", index, "fields"), ()):
                problem = _missing(xpath[1], xpath[0], paths, namespaces, service)
                if problem:
                    problems.append(_line(_Site(path, text, loc), problem))
    return problems


def _service(site: _Site, service: object, known: dict[str, str]) -> Iterator[str]:
    if not isinstance(service, str) or service == _WILDCARD or service in known:
        return
    close = difflib.get_close_matches(service, list(known), n=1, cutoff=0.8)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    yield _line(
        site,
        f"unknown message type '{service}': no schema set lists it (known: "
        f"{', '.join(sorted(k for k in known if not k.isdigit()))}){hint}",
    )


def _line(site: _Site, cause: str) -> str:
    (line,) = lines_of(site.text, [site.loc])
    key = ".".join(str(p) for p in site.loc)
    return f"{site.path}:{line or 0}: {key}: {cause}"


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))


def _global_elements(schema: Path) -> list[str]:
    # A schema set for any root element: its message types are the entry schema's
    # global elements.
    from lxml import etree

    try:
        root = etree.parse(str(schema), etree.XMLParser(no_network=True)).getroot()
    except (OSError, etree.XMLSyntaxError):
        return []
    xs = "{http://www.w3.org/2001/XMLSchema}element"
    return [str(e.get("name")) for e in root.findall(xs) if e.get("name")]


def _paths(service: str, schema_dirs: list[Path]) -> set[tuple[tuple[str, str], ...]] | None:
    """Every element/attribute path below the root, as (namespace, local) steps."""
    try:
        catalog = field_catalog(service, schema_dirs)
    except SchemaRegistryError:
        return None  # e.g. a LeiKa key or a set without ``messages``: not checked
    out: set[tuple[tuple[str, str], ...]] = set()
    for info in catalog.fields:
        steps = info.xpath.strip("/").split("/")[1:]
        out.add(tuple(_qualify(step, catalog.namespaces) for step in steps))
    return out


def _qualify(step: str, namespaces: dict[str, str]) -> tuple[str, str]:
    prefix, _, local = step.rpartition(":")
    return (namespaces.get(prefix, prefix) if prefix else "", local)


def _xpaths(
    fields: Any, loc: tuple[str | int, ...], context: tuple[str, ...]
) -> Iterator[tuple[tuple[str | int, ...], tuple[tuple[str, ...], str]]]:
    """(loc, (context steps, xpath)) for every simple XPath of a mapping's fields."""
    if not isinstance(fields, dict):
        return
    for name, spec in fields.items():
        here = (*loc, name)
        if isinstance(spec, str):
            yield (here, (context, spec))
            continue
        if not isinstance(spec, dict):
            continue
        if isinstance(spec.get("xpath"), str):
            yield ((*here, "xpath"), (context, spec["xpath"]))
        for arg, xpath in (spec.get("args") or {}).items():
            if isinstance(xpath, str):
                yield ((*here, "args", arg), (context, xpath))
        if isinstance(spec.get("items"), str):
            items = spec["items"]
            yield ((*here, "items"), (context, items))
            inner = _steps(items)
            if inner is not None:
                yield from _xpaths(spec.get("fields"), (*here, "fields"), (*context, *inner))
        elif isinstance(spec.get("fields"), dict):
            yield from _xpaths(spec["fields"], (*here, "fields"), context)


def _steps(xpath: str) -> tuple[str, ...] | None:
    xpath = xpath.strip()
    if not xpath or xpath.startswith("/") or "//" in xpath:
        return None
    steps = tuple(xpath.split("/"))
    if any(s in (".", "..") for s in steps):
        return None
    if all(s.startswith("@") or _STEP.match(s) for s in steps):
        return steps
    return None


def _missing(
    xpath: str,
    context: tuple[str, ...],
    paths: set[tuple[tuple[str, str], ...]],
    namespaces: dict[str, str],
    service: str,
) -> str | None:
    steps = _steps(xpath)
    if steps is None:
        return None
    found: list[tuple[str, str]] = []
    for step in (*context, *steps):
        if step.startswith("@"):
            qualified = ("", step)
        else:
            match = _STEP.match(step)
            if match is None:
                return None
            prefix = match["prefix"]
            if prefix and prefix not in namespaces:
                return None  # the loader reports undeclared prefixes
            uri = namespaces[prefix] if prefix else ""
            qualified = (uri, match["local"])
        candidate = (*found, qualified)
        if tuple(candidate) not in paths:
            there = sorted(
                _show(p[len(found)], namespaces)
                for p in paths
                if len(p) == len(found) + 1 and p[: len(found)] == tuple(found)
            )
            where = "/".join(_show(s, namespaces) for s in found) or "the root element"
            listed = ", ".join(there[:12]) + (", ..." if len(there) > 12 else "")
            return (
                f"'{xpath}' names no element of {service}: no '{_show(qualified, namespaces)}' "
                f"under {where} (there: {listed or 'nothing'}; see `xoev-gateway schema "
                f"fields {service}`)"
            )
        found.append(qualified)
    return None


def _show(step: tuple[str, str], namespaces: dict[str, str]) -> str:
    uri, local = step
    if not uri:
        return local
    prefix = next((p for p, u in namespaces.items() if u == uri), None)
    return f"{prefix}:{local}" if prefix else f"{{{uri}}}{local}"
