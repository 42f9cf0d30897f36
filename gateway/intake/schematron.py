"""ISO Schematron business rules, compiled once to XSLT 3 and run with Saxon (saxonche).

Real XÖV rule sets (XBau's ``xbau-schematron.sch``) use ``queryBinding="xslt2"``, which
lxml's isoschematron (an XSLT 1 skeleton) cannot run, and no maintained Schematron → XSLT
compiler (SchXslt, the ISO skeleton for XSLT 2) is packaged on PyPI. So this module compiles
the subset those rule sets use to an XSLT 3 stylesheet itself (built with lxml), has Saxon
compile that stylesheet once at start-up, and runs it once per message.

Supported subset (anything else is refused with the file, line and element, never ignored):

* ``sch:schema`` with ``queryBinding`` ``xslt2`` or ``xslt3`` and no ``defaultPhase`` other
  than ``#ALL`` (all patterns always run; ``sch:phase`` elements are therefore inert);
* ``sch:ns`` (prefix, uri); ``sch:let`` (``name``, ``value``) at schema level (a global
  variable, evaluated against the document) and at rule level;
* ``sch:pattern`` (optional ``id``), with first-matching-rule-per-pattern semantics: each
  pattern is one XSLT mode, its rules templates with priorities in document order;
* ``sch:rule`` (``context``, ``id``, ``abstract="true"``, ``sch:extends rule="..."``,
  which inserts the abstract rule's lets, asserts and reports; abstract rules are looked up
  across the whole schema);
* ``sch:assert`` / ``sch:report`` (``test``, ``id``, ``role``, ``flag``) whose message may
  contain text, ``sch:value-of select``, ``sch:name [path]``, and ``sch:emph``, ``sch:dir``,
  ``sch:span`` (kept as their text);
* ``sch:title``, ``sch:p`` and the documentation attributes ``see``, ``fpi``, ``icon``,
  ``xml:lang``, ``xml:space`` are accepted and have no effect.

Refused: ``sch:include``, abstract or parameterised patterns (``abstract``, ``is-a``,
``sch:param``), ``sch:extends href``, ``sch:diagnostics`` / ``diagnostics``, ``subject``,
``sch:properties``, pattern-level ``sch:let``, ``sch:let`` with content instead of
``value``, a ``defaultPhase`` other than ``#ALL``, other query bindings (XPath 1
expressions do not keep their meaning under XPath 3), and embedded XSLT (``xsl:function``,
``xsl:key``). A bad XPath is refused when Saxon compiles the stylesheet, naming the
Schematron file, line and element it came from.

Each failed assert and each fired report becomes a :class:`Finding` with the assertion's
id, the message (whitespace-normalised), the location as a prefixed XPath and the line,
looked up in the lxml tree the gateway already parsed.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lxml import etree
from saxonche import PySaxonApiError, PySaxonProcessor

from gateway.errors import SchemaRegistryError

SCH = "http://purl.oclc.org/dsdl/schematron"
XSL = "http://www.w3.org/1999/XSL/Transform"
XS = "http://www.w3.org/2001/XMLSchema"
XML = "http://www.w3.org/XML/1998/namespace"
# The generated stylesheet's own names (modes, variables, source markers) live here, so
# they can never collide with a rule set's let names.
GW = "urn:xoev-gateway:schematron"

_QUERY_BINDINGS = frozenset({"xslt2", "xslt3"})
_DOC_ATTRIBUTES = frozenset({"see", "fpi", "icon", f"{{{XML}}}lang", f"{{{XML}}}space"})
_ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "schema": frozenset({"queryBinding", "schemaVersion", "defaultPhase", "id"}),
    "ns": frozenset({"prefix", "uri"}),
    "pattern": frozenset({"id"}),
    "rule": frozenset({"context", "id", "abstract"}),
    "extends": frozenset({"rule"}),
    "let": frozenset({"name", "value"}),
    "assert": frozenset({"test", "id", "role", "flag"}),
    "report": frozenset({"test", "id", "role", "flag"}),
    "value-of": frozenset({"select"}),
    "name": frozenset({"path"}),
    "emph": frozenset(),
    "dir": frozenset({"value"}),
    "span": frozenset({"class"}),
}
_NON_BLOCKING = frozenset({"warning", "warn", "info", "information"})
_EQNAME = re.compile(r"Q\{([^}]*)\}")


@dataclass(frozen=True)
class Finding:
    """One failed ``sch:assert`` or fired ``sch:report``."""

    id: str
    kind: Literal["assert", "report"]
    message: str
    path: str
    line: int | None
    role: str | None = None
    flag: str | None = None

    @property
    def blocking(self) -> bool:
        """Findings whose role or flag says warning/info do not reject a message."""
        return not ({(self.role or "").lower(), (self.flag or "").lower()} & _NON_BLOCKING)


class Schematron:
    """One compiled rule set: ``check(tree)`` returns its findings for one message."""

    def __init__(
        self,
        path: Path,
        stylesheet: str,
        executable: Any,
        processor: Any,
        prefixes: dict[str, str],
        ids: frozenset[str] = frozenset(),
    ) -> None:
        self.path = path
        self.ids = ids
        """The ids its findings can carry (assert/report ids, else their rule's id)."""
        self.stylesheet = stylesheet
        self._executable = executable
        self._processor = processor
        self._prefixes = prefixes  # namespace URI -> prefix, from sch:ns

    def check(self, tree: etree._ElementTree) -> list[Finding]:
        # Saxon gets the tree the gateway parsed (serialised: it has no DTD, no entities,
        # the hardened parser saw to that), never a second look at the raw body.
        text = etree.tostring(tree, encoding="unicode")
        try:
            document = self._processor.parse_xml(xml_text=text)
            result = self._executable.transform_to_string(xdm_node=document)
        except PySaxonApiError as exc:
            raise SchemaRegistryError(
                f"Schematron {self.path} failed at run time: {str(exc).strip()}"
            ) from None
        records: list[dict[str, str | None]] = json.loads(result or "[]")
        namespaces = _Namespaces(self._prefixes, tree.getroot())
        findings = []
        for record in records:
            xpath = namespaces.prefixed(record["path"] or "/")
            findings.append(
                Finding(
                    id=record["id"] or "",
                    kind="report" if record["kind"] == "report" else "assert",
                    message=record["message"] or "",
                    path=xpath,
                    line=_line(tree, xpath, namespaces.bindings),
                    role=record["role"] or None,
                    flag=record["flag"] or None,
                )
            )
        return findings


_PROCESSOR: Any = None
_PROCESSOR_LOCK = threading.Lock()


def _saxon_processor() -> Any:
    """The one Saxon processor of the process, created on first use and never freed.

    saxonche calls ``SaxonProcessor::release()`` the first time the number of live
    ``PySaxonProcessor`` objects drops to zero, and release detaches a GraalVM isolate
    thread that belongs to another OS thread when it runs anywhere but where the Saxon calls
    were made. Held by reference cycles, a processor is freed by the cyclic garbage
    collector on whichever thread it happens to run (an ``asyncio.to_thread`` worker, the
    SQLite writer, a server thread); there GraalVM finds the stack pointer outside the
    detached thread's stack, reports "StackOverflowError: Enabling the yellow zone of the
    stack did not make any stack space available" and calls ``exit(99)``, silently, for the
    whole process. One processor held for the life of the process keeps that count above
    zero, so the release can only happen at interpreter exit, on the main thread.
    """
    global _PROCESSOR
    with _PROCESSOR_LOCK:
        if _PROCESSOR is None:
            _PROCESSOR = PySaxonProcessor(license=False)
        return _PROCESSOR


class SchematronCompiler:
    """Compiles rule sets with the process's one Saxon processor."""

    def __init__(self) -> None:
        self._processor = _saxon_processor()

    def compile(self, path: Path) -> Schematron:
        try:
            schema = etree.parse(str(path), etree.XMLParser(no_network=True)).getroot()
        except (OSError, etree.XMLSyntaxError) as exc:
            raise SchemaRegistryError(f"Schematron {path}: {exc}") from None
        translator = _Translator(path, schema)
        stylesheet, prefixes = translator.stylesheet()
        xslt = self._processor.new_xslt30_processor()
        try:
            executable = xslt.compile_stylesheet(stylesheet_text=stylesheet)
        except PySaxonApiError as exc:
            raise SchemaRegistryError(_compile_error(path, stylesheet, str(exc))) from None
        if executable is None:  # older saxonche reports through exception_occurred
            raise SchemaRegistryError(f"Schematron {path}: Saxon could not compile it")
        return Schematron(
            path, stylesheet, executable, self._processor, prefixes, frozenset(translator.ids)
        )


# --------------------------------------------------------------------------- translation


def _q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


class _Translator:
    def __init__(self, path: Path, schema: etree._Element) -> None:
        self.path = path
        self.schema = schema
        self.abstract: dict[str, etree._Element] = {}
        self.ids: set[str] = set()

    def refuse(self, element: etree._Element, why: str) -> SchemaRegistryError:
        return SchemaRegistryError(
            f"Schematron {self.path}:{element.sourceline}: <{_label(element)}> {why}"
        )

    def stylesheet(self) -> tuple[str, dict[str, str]]:
        schema = self.schema
        if schema.tag != _q(SCH, "schema"):
            raise self.refuse(schema, "is not an ISO Schematron schema element")
        self.check_element(schema)
        binding = schema.get("queryBinding")
        if binding not in _QUERY_BINDINGS:
            raise self.refuse(
                schema,
                f'has queryBinding="{binding or ""}"; supported: xslt2, xslt3 (XPath 3 '
                "evaluation changes the meaning of XPath 1 rules)",
            )
        if schema.get("defaultPhase", "#ALL") != "#ALL":
            raise self.refuse(schema, "selects a phase; only #ALL (every pattern) is supported")

        nsmap: dict[str, str] = {"xs": XS}
        for prefix, uri in schema.nsmap.items():
            if prefix and uri != SCH:
                nsmap[prefix] = uri
        prefixes: dict[str, str] = {}
        lets: list[etree._Element] = []
        patterns: list[etree._Element] = []
        for child in self.children(schema):
            local = etree.QName(child).localname
            if local == "ns":
                ns_prefix, ns_uri = child.get("prefix"), child.get("uri")
                if not ns_prefix or ns_uri is None:
                    raise self.refuse(child, "needs prefix and uri")
                prefixes.setdefault(ns_uri, ns_prefix)
                if ns_prefix != "xml":  # always bound; lxml refuses to redeclare it
                    nsmap[ns_prefix] = ns_uri
            elif local == "let":
                lets.append(child)
            elif local == "pattern":
                patterns.append(child)
            elif local in ("title", "p", "phase"):
                continue
            else:
                raise self.refuse(child, "is outside the supported Schematron subset")
        for pattern in patterns:
            for rule in self.children(pattern):
                if rule.tag == _q(SCH, "rule") and rule.get("abstract") == "true":
                    rule_id = rule.get("id")
                    if not rule_id:
                        raise self.refuse(rule, "is abstract but has no id")
                    self.abstract[rule_id] = rule

        nsmap["gw"] = GW
        nsmap["xsl"] = XSL
        root = etree.Element(_q(XSL, "stylesheet"), nsmap=nsmap)
        root.set("version", "3.0")
        root.set("exclude-result-prefixes", "#all")
        etree.SubElement(root, _q(XSL, "output"), method="json")
        for let in lets:
            self.variable(root, let)
        start = etree.SubElement(root, _q(XSL, "template"), match="/")
        collect = etree.SubElement(
            start, _q(XSL, "variable"), {"name": "gw:findings", "as": "map(*)*"}
        )
        etree.SubElement(start, _q(XSL, "sequence"), select="array { $gw:findings }")
        for number, pattern in enumerate(patterns, start=1):
            mode = f"gw:pattern{number}"
            etree.SubElement(root, _q(XSL, "mode"), {"name": mode, "on-no-match": "shallow-skip"})
            etree.SubElement(collect, _q(XSL, "apply-templates"), select=".", mode=mode)
            self.pattern(root, pattern, mode)
        text = etree.tostring(root, pretty_print=True, encoding="unicode")
        return text, prefixes

    def pattern(self, root: etree._Element, pattern: etree._Element, mode: str) -> None:
        rules: list[etree._Element] = []
        for child in self.children(pattern):
            local = etree.QName(child).localname
            if local == "rule":
                if child.get("abstract") == "true":
                    self.rule_body(etree.Element("scratch"), child, [])  # check it
                    continue
                if child.get("abstract") not in (None, "false"):
                    raise self.refuse(child, 'has abstract other than "true"/"false"')
                rules.append(child)
            elif local in ("title", "p"):
                continue
            else:
                raise self.refuse(child, "is outside the supported Schematron subset")
        for index, rule in enumerate(rules):
            context = rule.get("context")
            if not context:
                raise self.refuse(rule, "needs a context")
            template = etree.SubElement(
                root,
                _q(XSL, "template"),
                match=context,
                mode=mode,
                # Earlier rules win: the first matching rule of a pattern fires, no other.
                priority=str(len(rules) - index),
            )
            template.set(_q(GW, "source"), _source(rule))
            self.rule_body(template, rule, [])
            etree.SubElement(template, _q(XSL, "apply-templates"), select="@*|node()", mode=mode)

    def rule_body(
        self, template: etree._Element, rule: etree._Element, extending: list[str]
    ) -> None:
        rule_id = rule.get("id", "")
        for child in self.children(rule):
            local = etree.QName(child).localname
            if local == "let":
                self.variable(template, child)
            elif local in ("assert", "report"):
                self.assertion(template, child, rule_id)
            elif local == "extends":
                target = child.get("rule")
                if target is None:
                    raise self.refuse(child, "without rule= (external href) is not supported")
                base = self.abstract.get(target)
                if base is None:
                    raise self.refuse(child, f'names no abstract rule "{target}"')
                if target in extending:
                    raise self.refuse(child, f'extends "{target}" in a cycle')
                self.rule_body(template, base, [*extending, target])
            elif local in ("title", "p"):
                continue
            else:
                raise self.refuse(child, "is outside the supported Schematron subset")

    def variable(self, parent: etree._Element, let: etree._Element) -> None:
        name, value = let.get("name"), let.get("value")
        if not name or value is None or len(let) or (let.text or "").strip():
            raise self.refuse(let, "needs name and value (content-valued let is not supported)")
        variable = etree.SubElement(parent, _q(XSL, "variable"), name=name, select=value)
        variable.set(_q(GW, "source"), _source(let))

    def assertion(self, template: etree._Element, node: etree._Element, rule_id: str) -> None:
        test = node.get("test")
        if test is None:
            raise self.refuse(node, "needs a test")
        kind = etree.QName(node).localname
        condition = f"not(({test}))" if kind == "assert" else f"({test})"
        branch = etree.SubElement(template, _q(XSL, "if"), test=condition)
        branch.set(_q(GW, "source"), _source(node))
        message = etree.SubElement(
            branch, _q(XSL, "variable"), {"name": "gw:message", "as": "xs:string"}
        )
        value = etree.SubElement(message, _q(XSL, "value-of"))
        self.message(value, node)
        record = etree.SubElement(branch, _q(XSL, "map"))
        if node.get("id") or rule_id:
            self.ids.add(node.get("id") or rule_id)
        entries = {
            "id": _literal(node.get("id") or rule_id),
            "kind": _literal(kind),
            "role": _literal(node.get("role", "")),
            "flag": _literal(node.get("flag", "")),
            "path": "path(.)",
            "message": "normalize-space($gw:message)",
        }
        for key, select in entries.items():
            etree.SubElement(record, _q(XSL, "map-entry"), key=f"'{key}'", select=select)

    def message(self, target: etree._Element, node: etree._Element) -> None:
        if node.text:
            etree.SubElement(target, _q(XSL, "text")).text = node.text
        for child in node:
            if isinstance(child.tag, str):
                self.check_element(child)
                local = etree.QName(child).localname
                if local == "value-of":
                    select = child.get("select")
                    if not select:
                        raise self.refuse(child, "needs select")
                    etree.SubElement(target, _q(XSL, "value-of"), select=select)
                elif local == "name":
                    path = child.get("path", ".")
                    etree.SubElement(target, _q(XSL, "value-of"), select=f"name({path})")
                elif local in ("emph", "dir", "span"):
                    self.message(target, child)
                else:
                    raise self.refuse(child, "is not supported in a message")
            if child.tail:
                etree.SubElement(target, _q(XSL, "text")).text = child.tail

    def children(self, element: etree._Element) -> Iterator[etree._Element]:
        for child in element:
            if not isinstance(child.tag, str):
                continue  # comments, processing instructions
            self.check_element(child)
            yield child

    def check_element(self, element: etree._Element) -> None:
        qname = etree.QName(element)
        if qname.namespace != SCH:
            raise self.refuse(element, "is not Schematron (embedded XSLT is not supported)")
        if qname.localname in ("title", "p", "phase"):
            return
        allowed = _ALLOWED_ATTRIBUTES.get(qname.localname)
        if allowed is None:
            raise self.refuse(element, "is outside the supported Schematron subset")
        for attribute in element.attrib:
            if attribute not in allowed and attribute not in _DOC_ATTRIBUTES:
                raise self.refuse(
                    element, f"has attribute {attribute}, outside the supported subset"
                )


def _label(element: etree._Element) -> str:
    qname = etree.QName(element)
    prefix = "sch:" if qname.namespace == SCH else ""
    ident = element.get("id")
    return f"{prefix}{qname.localname}" + (f' id="{ident}"' if ident else "")


def _source(element: etree._Element) -> str:
    return f"{element.sourceline}:{_label(element)}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_LINE = re.compile(r"on line (\d+)")


def _compile_error(path: Path, stylesheet: str, message: str) -> str:
    """Name the Schematron line and element that Saxon's complaint (about the generated
    stylesheet) comes from."""
    message = " ".join(message.split())
    found = _LINE.search(message)
    if found:
        generated_line = int(found.group(1))
        tree = etree.fromstring(stylesheet)
        for element in tree.iter():
            if element.sourceline == generated_line:
                for holder in (element, *element.iterancestors()):
                    source = holder.get(_q(GW, "source"))
                    if source:
                        line, label = source.split(":", 1)
                        return f"Schematron {path}:{line}: <{label}>: {message}"
    return f"Schematron {path}: {message}"


# --------------------------------------------------------------------------- locations


class _Namespaces:
    """Turns Saxon's ``path()`` (``/Q{uri}local[1]/...``) into a prefixed XPath."""

    def __init__(self, prefixes: dict[str, str], root: etree._Element) -> None:
        self.prefixes = {XML: "xml", **prefixes}  # URI -> prefix
        self.bindings = {p: u for u, p in self.prefixes.items() if p != "xml"}
        for prefix, uri in root.nsmap.items():  # the document's own, where still free
            if prefix and uri not in self.prefixes and prefix not in self.bindings:
                self.prefixes[uri] = prefix
                self.bindings[prefix] = uri

    def prefixed(self, path: str) -> str:
        return _EQNAME.sub(self._prefix, path)

    def _prefix(self, found: re.Match[str]) -> str:
        uri = found.group(1)
        if not uri:
            return ""
        prefix = self.prefixes.get(uri)
        if prefix is None:
            number = len(self.prefixes)
            while f"ns{number}" in self.bindings:
                number += 1
            prefix = self.prefixes[uri] = f"ns{number}"
            self.bindings[prefix] = uri
        return f"{prefix}:"


def _line(tree: etree._ElementTree, xpath: str, namespaces: dict[str, str]) -> int | None:
    if xpath == "/":
        return None
    try:
        found = tree.xpath(xpath, namespaces=namespaces)
    except etree.XPathError:
        return None
    if not isinstance(found, list) or not found:
        return None
    node = found[0]
    if isinstance(node, etree._Element):
        return node.sourceline
    parent = getattr(node, "getparent", None)  # attribute values and text: their element
    element = parent() if parent is not None else None
    return element.sourceline if isinstance(element, etree._Element) else None
