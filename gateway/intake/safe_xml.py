"""Hardened parsing of untrusted submissions.

Instances never get DTD, entity, XInclude or network processing. libxml2 stays in its
default (non-``huge``) limits, which cap nesting depth at 256 and text nodes at 10 MB, so
hostile documents fail fast with bounded memory. Schemas are parsed elsewhere, by a
parser that trusts its (operator-supplied) input.
"""

from __future__ import annotations

from lxml import etree

from gateway.errors import MalformedXml, UnsafeXml

XINCLUDE_NS = b"http://www.w3.org/2001/XInclude"

_parser = etree.XMLParser(
    resolve_entities=False,
    load_dtd=False,
    dtd_validation=False,
    no_network=True,
    huge_tree=False,
    remove_blank_text=False,
    collect_ids=False,
)


def _has_doctype(body: bytes) -> bool:
    # XML spells it in capitals; no "<!DOCTYPE" anywhere (the usual case) settles it in C.
    if b"<!DOCTYPE" not in body:
        return False
    # A DOCTYPE can only stand in the prolog, before the root element, so scanning the
    # bytes before the first element start is enough and costs nothing on large bodies.
    pos = 0
    while True:
        lt = body.find(b"<", pos)
        if lt < 0 or lt + 1 >= len(body):
            return False
        nxt = body[lt + 1 : lt + 2]
        if nxt == b"?":
            pos = body.find(b"?>", lt) + 2
        elif body.startswith(b"<!--", lt):
            pos = body.find(b"-->", lt) + 3
        else:
            return nxt == b"!"
        if pos < 2:
            return False


def parse_untrusted(body: bytes) -> etree._ElementTree:
    """Parse a submission; raise ``UnsafeXml`` or ``MalformedXml`` with the precise cause."""
    if not body or body.isspace():  # isspace stops at the first non-blank, no copy
        raise MalformedXml("the body is empty")
    if _has_doctype(body):
        raise _unsafe(
            "a DOCTYPE declaration is not allowed (no DTDs or entities in submissions)", "DOCTYPE"
        )
    try:
        root = etree.fromstring(body, _parser)
    except etree.XMLSyntaxError as exc:
        error = MalformedXml(_describe(exc))
        last = exc.error_log.last_error if exc.error_log else None
        error.code = last.type_name if last is not None else "ERR_SYNTAX"
        error.line, error.column = exc.lineno or None, exc.offset or None
        raise error from None
    if root is None:  # pragma: no cover - lxml raises instead, kept for the type checker
        raise MalformedXml("no root element")
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        raise _unsafe(
            "a DOCTYPE declaration is not allowed (no DTDs or entities in submissions)", "DOCTYPE"
        )
    if XINCLUDE_NS in body:
        for _ in root.iter(f"{{{XINCLUDE_NS.decode()}}}*"):
            raise _unsafe("XInclude is not allowed in submissions", "XINCLUDE")
    return tree


def _unsafe(detail: str, construct: str) -> UnsafeXml:
    error = UnsafeXml(detail)
    error.code = f"UNSAFE_{construct}"
    return error


def _describe(exc: etree.XMLSyntaxError) -> str:
    msg = str(exc.msg or exc).strip()
    if "Excessive depth" in msg or "Maximum depth" in msg:
        return f"nesting deeper than the allowed 256 levels (line {exc.lineno})"
    if "Input is not proper UTF-8" in msg or "encoding" in msg.lower():
        return f"invalid character encoding: {msg}"
    return msg
