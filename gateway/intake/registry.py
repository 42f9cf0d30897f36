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
        severity: {sch-hs-004: warning}  # optional: a rule's severity (error, warning,
                                         # information), like KoSIT's customLevel
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import ErrorDetail, InvalidMessage, SchemaRegistryError, UnknownMessageType
from gateway.intake.header import HeaderReader, HeaderSpec, resolve_spec
from gateway.intake.schematron import Finding as RuleFinding
from gateway.intake.schematron import Schematron, SchematronCompiler
from gateway.report import WELL_FORMED, XSD, Finding, Severity, Step, ValidationReport
from gateway.yaml_lines import lines_of


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
    severity: dict[str, Severity] = {}
    """Schematron rule id -> the severity its findings get (docs/validation.md)."""


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: dict[str, str] = {}
    schema_sets: list[SchemaSetEntry] = []


class _CatalogResolver(etree.Resolver):
    """Resolves absolute schema URLs through the catalog and refuses everything remote."""

    def __init__(self, urls: dict[str, Path]) -> None:
        super().__init__()
        self.urls = urls
        self.missing: list[str] = []
        """Absolute URLs refused: libxml2 reports only that the import failed."""

    def resolve(self, system_url: str | None, public_id: str | None, context: Any) -> Any:
        if system_url is None:
            return None
        local = self.urls.get(system_url)
        if local is not None:
            return self.resolve_filename(str(local), context)
        if system_url.startswith(("http://", "https://", "ftp://")):
            self.missing.append(system_url)
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

    severity: dict[str, Severity] = field(default_factory=dict, repr=False)
    passed: tuple[Step, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # The steps of a message that passes all: built once, shared by every such report.
        self.passed = (
            Step(WELL_FORMED, "passed"),
            Step(XSD, "passed"),
            *(Step(rule_step(r), "passed") for r in self.rules),
        )

    def validate(self, tree: etree._ElementTree, body: bytes = b"") -> ValidationReport:
        """XSD, then every rule set (also on a schema-invalid tree: it is well-formed, and
        the administrator sees all that is wrong at once). Returns the report of an accepted
        message (it may hold warnings); raises ``InvalidMessage`` carrying the report."""
        if self.schema.validate(tree):
            # The common case allocates only the report (each rule set's findings, and the
            # shared steps when there are none) and leaves ``sha256`` empty: the accept
            # path hashes the body anyway (``pipeline.with_sha256`` fills it elsewhere).
            found = [rules.check(tree) for rules in self.rules]
            if not any(found):
                return ValidationReport("", self.id, self.passed)
            sha256 = hashlib.sha256(body).hexdigest()
            return self._report(sha256, tree, [Step(XSD, "passed")], [], found)
        sha256 = hashlib.sha256(body).hexdigest()
        xsd = [
            Finding(
                XSD,
                "error",
                e.type_name,
                e.path or "/",
                e.line or None,
                e.column or None,
                e.message,
            )
            for e in self.schema.error_log
        ]
        return self._report(sha256, tree, [Step(XSD, "failed")], xsd, None)

    def _report(
        self,
        sha256: str,
        tree: etree._ElementTree,
        steps: list[Step],
        findings: list[Finding],
        found: list[list[RuleFinding]] | None,
    ) -> ValidationReport:
        """``found``: the rule sets' findings on a schema-valid tree; None: run them here,
        on a schema-invalid one, where a rule set may fail (it may assume the schema's
        types, e.g. cast a date that is none): the report then says so."""
        steps.insert(0, Step(WELL_FORMED, "passed"))
        for i, rules in enumerate(self.rules):
            name = rule_step(rules)
            if found is not None:
                results = found[i]
            else:
                try:
                    results = rules.check(tree)
                except SchemaRegistryError as exc:
                    why = f"cannot run on this schema-invalid document: {exc.detail}"
                    steps.append(Step(name, "skipped", why))
                    continue
            own = [self._finding(name, f) for f in results]
            failed = any(f.severity == "error" for f in own)
            steps.append(Step(name, "failed" if failed else "passed"))
            findings.extend(own)
        report = ValidationReport(sha256, self.id, tuple(steps), tuple(findings))
        if report.accepted:
            return report
        raise invalid(report)

    def _finding(self, step: str, f: RuleFinding) -> Finding:
        severity = self.severity.get(f.id) or _rule_severity(f)
        return Finding(step, severity, f.id, f.path, f.line, None, f.message)


def rule_step(rules: Schematron) -> str:
    return f"schematron:{rules.path.name}"


def _rule_severity(f: RuleFinding) -> Severity:
    marks = {(f.role or "").lower(), (f.flag or "").lower()}
    if marks & {"info", "information"}:
        return "information"
    if marks & {"warning", "warn"}:
        return "warning"
    return "error"


def invalid(report: ValidationReport) -> InvalidMessage:
    """The rejection of a report that is not accepted; ``errors`` as before (XPath, line,
    message; rule findings prefixed with their id) for clients that read only those."""
    errors = report.errors
    xsd = sum(1 for f in errors if f.step == XSD)
    rules = len(errors) - xsd
    parts = [
        f"{n} {what} violation{'s' if n != 1 else ''}"
        for n, what in ((xsd, "schema"), (rules, "business-rule"))
        if n
    ]
    error = InvalidMessage(
        f"{' and '.join(parts)} against {report.schema_set}",
        [
            ErrorDetail(f.path, f.line, f.message if f.step == XSD else f"[{f.code}] {f.message}")
            for f in errors
        ],
    )
    error.report = report
    return error


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
        text = catalog_path.read_text(encoding="utf-8")
        try:
            raw = yaml.safe_load(text) or {}
            catalog = CatalogFile.model_validate(raw)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f"{mark.line + 1}:" if mark is not None else ""
            raise SchemaRegistryError(f"{catalog_path}:{line} invalid YAML: {exc}") from None
        except ValidationError as exc:
            raise SchemaRegistryError(_catalog_problem(catalog_path, text, exc)) from None
        for url, rel in catalog.urls.items():
            urls[url] = (directory / rel).resolve()
        entries.extend((directory, e) for e in catalog.schema_sets)
    return entries, urls


def _catalog_problem(path: Path, text: str, exc: ValidationError) -> str:
    """The first problem as ``file:line: key: cause``, like the config loader's."""
    error = exc.errors()[0]
    loc = tuple(error["loc"])
    (line,) = lines_of(text, [loc])
    key = ".".join(str(p) for p in loc)
    cause = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
    if error["type"] == "missing":
        cause = "required key missing"
    more = len(exc.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{path}:{line or 0}: {key}: {cause}{tail}"


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
    except etree.XMLSchemaParseError as exc:
        if resolver.missing:
            raise _missing_url(entry, directory, resolver.missing[-1], exc) from None
        raise SchemaRegistryError(f"schema set {entry.id} ({path}): {exc}") from None
    except (OSError, etree.XMLSyntaxError) as exc:
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
        severity=_severity(entry, rules),
    )


def _missing_url(
    entry: SchemaSetEntry, directory: Path, url: str, exc: etree.XMLSchemaParseError
) -> SchemaRegistryError:
    """Names the file and line that import ``url`` (not the entry schema), and the fix."""
    where = next(
        (f"{e.filename}:{e.line}: " for e in exc.error_log if url in e.message and e.filename),
        "",
    )
    return SchemaRegistryError(
        f"{where}schemaLocation {url} is not in any catalog (schema set {entry.id}): add it "
        f"under `urls:` in {directory / 'catalog.yaml'}, mapped to a local copy of the file "
        "(the registry never fetches from the network)"
    )


def _severity(entry: SchemaSetEntry, rules: list[Schematron]) -> dict[str, Severity]:
    known = {i for r in rules for i in r.ids}
    unknown = sorted(set(entry.severity) - known)
    if unknown:
        raise SchemaRegistryError(
            f"schema set {entry.id}: severity: no rule with id {', '.join(unknown)} in its "
            f"Schematron ({len(known)} rule ids: {', '.join(sorted(known)[:8]) or 'none'}"
            f"{', ...' if len(known) > 8 else ''})"
        )
    return dict(entry.severity)
