"""Compiles mapping entries once per config load: XPath and XSLT objects, checked value maps.

Every problem raises :class:`SpecError` with the ``loc`` (path of keys inside the entry),
which the config loader turns into ``file:line: key: cause``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lxml import etree

from gateway.mapping.codelists import CodeLists
from gateway.mapping.model import FieldSpec, Scalar, ValueMap

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# A trial run on an empty document reveals what lxml reports only when evaluating:
# undeclared namespace prefixes, unknown functions, variables.
_PROBE = etree.fromstring("<probe/>")
# Transforms are operator files, but still may not read or write files or the network.
_NO_ACCESS = etree.XSLTAccessControl.DENY_ALL


class _ConfinedResolver(etree.Resolver):
    """Lets a stylesheet and its ``xsl:include``/``xsl:import`` load only files inside
    ``root`` (the configuration directory), never a URL of another scheme; records the
    files loaded, which count in the configuration version. libxslt asks the parser's
    resolvers for every stylesheet document, so a refusal here stops the compile."""

    def __init__(self, root: Path | None, files: set[Path]) -> None:
        super().__init__()
        self.root = root
        self.files = files

    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> Any:
        url = system_url or ""
        parsed = urlparse(url)
        if parsed.scheme not in ("", "file") and len(parsed.scheme) > 1:
            raise SpecError((), f"stylesheet {url} refused: only files in the configuration")
        raw = unquote(parsed.path) if parsed.scheme == "file" else url
        path = Path(raw).resolve()
        if self.root is not None and not path.is_relative_to(self.root):
            raise SpecError(
                (), f"stylesheet {path} refused: outside the configuration directory {self.root}"
            )
        self.files.add(path)
        return self.resolve_filename(str(path), context)


class SpecError(Exception):
    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


@dataclass(frozen=True)
class CompiledValueMap:
    values: Mapping[str, Scalar]
    has_default: bool
    default: Scalar


@dataclass(frozen=True)
class CompiledField:
    name: str
    spec: FieldSpec
    kind: str
    select: etree.XPath | None = None
    when: etree.XPath | None = None
    args: Mapping[str, etree.XPath] = field(default_factory=dict)
    fields: Mapping[str, CompiledField] = field(default_factory=dict)
    xslt: etree.XSLT | None = None
    value_map: CompiledValueMap | None = None


class Compiler:
    """Compiles fields of the entries of one config load; identical XPaths are shared."""

    def __init__(
        self, namespaces: Mapping[str, str], codelists: CodeLists, root: Path | None = None
    ) -> None:
        """``root``: stylesheets and what they include must lie inside it (the config)."""
        self.namespaces = dict(namespaces)
        self.codelists = codelists
        self.root = root.resolve() if root is not None else None
        self._xpaths: dict[str, etree.XPath] = {}
        self._xslts: dict[Path, etree.XSLT] = {}
        self.stylesheet_files: set[Path] = set()
        """Every stylesheet file read, includes and imports too."""

    def fields(
        self, specs: Mapping[str, FieldSpec | str | None], base: Path, loc: tuple[str | int, ...]
    ) -> dict[str, CompiledField | None]:
        """Compiled fields; ``None`` marks a field removed from an inherited mapping."""
        out: dict[str, CompiledField | None] = {}
        for name, spec in specs.items():
            if spec is None:
                out[name] = None
            else:
                out[name] = self.field(name, spec, base, (*loc, name))
        return out

    def field(
        self, name: str, spec: FieldSpec | str, base: Path, loc: tuple[str | int, ...]
    ) -> CompiledField:
        if isinstance(spec, str):
            spec = FieldSpec(xpath=spec)
        kind = spec.kind
        select = None
        if spec.xpath is not None:
            select = self.xpath(spec.xpath, (*loc, "xpath"))
        elif spec.items is not None:
            select = self.xpath(spec.items, (*loc, "items"))
        nested: dict[str, CompiledField] = {}
        if spec.fields is not None:
            for sub, sub_spec in spec.fields.items():
                if sub_spec is None:
                    raise SpecError((*loc, "fields", sub), "null removes inherited fields only")
                nested[sub] = self.field(sub, sub_spec, base, (*loc, "fields", sub))
        args = {}
        if spec.template is not None:
            used = set(PLACEHOLDER.findall(spec.template))
            missing = sorted(used - set(spec.args))
            if missing:
                raise SpecError(
                    (*loc, "template"), f"placeholder {{{missing[0]}}} has no XPath in 'args'"
                )
            args = {k: self.xpath(v, (*loc, "args", k)) for k, v in spec.args.items()}
        return CompiledField(
            name=name,
            spec=spec,
            kind=kind,
            select=select,
            when=self.xpath(spec.when, (*loc, "when")) if spec.when is not None else None,
            args=args,
            fields=nested,
            xslt=self.xslt(base / spec.xslt, (*loc, "xslt")) if spec.xslt is not None else None,
            value_map=self.value_map(spec.map, (*loc, "map")) if spec.map is not None else None,
        )

    def xpath(self, expr: str, loc: tuple[str | int, ...]) -> etree.XPath:
        cached = self._xpaths.get(expr)
        if cached is not None:
            return cached
        try:
            compiled = etree.XPath(expr, namespaces=self.namespaces, smart_strings=False)
            compiled(_PROBE)
        except etree.XPathError as exc:
            cause = str(exc)
            if "namespace prefix" in cause.lower():
                prefixes = sorted(set(re.findall(r"([A-Za-z_][\w.-]*):(?!:)", expr)))
                undeclared = [p for p in prefixes if p not in self.namespaces]
                cause = (
                    f"undeclared namespace prefix {', '.join(undeclared) or '?'} in '{expr}' "
                    "(declare it under 'namespaces')"
                )
            else:
                cause = f"invalid XPath '{expr}': {cause}"
            raise SpecError(loc, cause) from None
        self._xpaths[expr] = compiled
        return compiled

    def xslt(self, path: Path, loc: tuple[str | int, ...]) -> etree.XSLT:
        path = path.resolve()
        cached = self._xslts.get(path)
        if cached is not None:
            return cached
        parser = etree.XMLParser(no_network=True, resolve_entities=False)
        parser.resolvers.add(_ConfinedResolver(self.root, self.stylesheet_files))
        try:
            transform = etree.XSLT(etree.parse(str(path), parser), access_control=_NO_ACCESS)
        except SpecError as exc:
            raise SpecError(loc, exc.message) from None
        except (OSError, etree.XMLSyntaxError, etree.XSLTParseError) as exc:
            raise SpecError(loc, f"cannot compile XSLT {path}: {exc}") from None
        self._xslts[path] = transform
        return transform

    def value_map(self, spec: ValueMap, loc: tuple[str | int, ...]) -> CompiledValueMap:
        if spec.codelist is not None:
            known = self.codelists.get(spec.codelist)
            if known is not None:
                unknown = sorted(set(spec.values) - known.codes)
                if unknown:
                    raise SpecError(
                        (*loc, "values", unknown[0]),
                        f"code '{unknown[0]}' is not in code list {spec.codelist}",
                    )
                missing = sorted(known.codes - set(spec.values))
                if missing and not spec.has_default:
                    raise SpecError(
                        (*loc, "values"),
                        f"misses code{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(repr(m) for m in missing)} of code list {spec.codelist} "
                        "(map them or give a 'default')",
                    )
        return CompiledValueMap(spec.values, spec.has_default, spec.default)
