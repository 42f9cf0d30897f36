"""The intake path: parse once, identify, validate and extract from the same tree.

Intake knows messages and schemas, not the routing config or the store: what happens to a
message that passed is the accept use case (``gateway.accept``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from lxml import etree

from gateway.errors import IntakeError, UnknownMessageType
from gateway.intake.header import Header
from gateway.intake.registry import SchemaRegistry, SchemaSet
from gateway.intake.routing_keys import RoutingKeys, routing_keys
from gateway.intake.safe_xml import parse_untrusted
from gateway.municipality import RecipientResolver
from gateway.report import WELL_FORMED, XSD, Finding, Step, ValidationReport


@dataclass(frozen=True)
class Checked:
    tree: etree._ElementTree
    schema_set: SchemaSet
    keys: RoutingKeys
    report: ValidationReport
    """Without ``sha256`` when clean (``with_sha256`` adds it; preview does not need it)."""


@dataclass(frozen=True)
class Examined:
    """What intake learns without the routing config: small and picklable, so that it can
    come back from an intake process."""

    schema_set: str
    leika: str | None
    header: Header
    report: ValidationReport


def validated(
    body: bytes, registry: SchemaRegistry
) -> tuple[etree._ElementTree, SchemaSet, ValidationReport]:
    """Parse, identify and validate; a rejection carries its report (``IntakeError.report``)."""
    try:
        tree = parse_untrusted(body)
    except IntakeError as exc:
        exc.report = _not_run(body, None, Step(WELL_FORMED, "failed"), exc, "not well-formed")
        raise
    try:
        schema_set = registry.identify(tree.getroot())
    except UnknownMessageType as exc:
        exc.report = _not_run(body, None, Step(WELL_FORMED, "passed"), None, exc.detail)
        raise
    return tree, schema_set, schema_set.validate(tree, body)


def with_sha256(report: ValidationReport, body: bytes) -> ValidationReport:
    """The report with the body's SHA-256 (a clean report comes back without it)."""
    if report.sha256:
        return report
    return dataclasses.replace(report, sha256=hashlib.sha256(body).hexdigest())


def _not_run(
    body: bytes, schema_set: str | None, first: Step, exc: IntakeError | None, why: str
) -> ValidationReport:
    findings: tuple[Finding, ...] = ()
    if exc is not None:
        code = exc.code or exc.slug
        findings = (Finding(WELL_FORMED, "error", code, "/", exc.line, exc.column, exc.detail),)
    steps = (first, Step(XSD, "skipped", why), Step("schematron", "skipped", why))
    return ValidationReport(hashlib.sha256(body).hexdigest(), schema_set, steps, findings)


def _examine(
    body: bytes, registry: SchemaRegistry
) -> tuple[etree._ElementTree, SchemaSet, Header, ValidationReport]:
    tree, schema_set, report = validated(body, registry)
    return tree, schema_set, schema_set.header.read(tree.getroot(), body), report


def examine(body: bytes, registry: SchemaRegistry) -> Examined:
    """Parse, identify, validate (XSD, then business rules) and read the header, once."""
    _tree, schema_set, header, report = _examine(body, registry)
    return Examined(schema_set.id, schema_set.leika, header, report)


def check(body: bytes, registry: SchemaRegistry, resolver: RecipientResolver) -> Checked:
    """Everything ``xoev-gateway validate`` and the API check, in the same order."""
    tree, schema_set, header, report = _examine(body, registry)
    return Checked(tree, schema_set, routing_keys(header, resolver, schema_set.leika), report)
