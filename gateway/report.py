"""Validation reports: every step of a message's validation with its outcome, every finding.

Modelled on the KoSIT validator's report: the steps (well-formedness, XSD, each Schematron
file) with ``passed``, ``failed`` or ``skipped`` (and why), the findings with step,
severity, code (libxml2's error type name such as ``SCHEMAV_ELEMENT_CONTENT``, or the
Schematron assertion id), XPath, line, column and message, the acceptance verdict and the
document's SHA-256. Only ``error`` findings reject; ``warning`` and ``information`` are
recorded with the accepted submission. The catalog can change a rule's severity per schema
set (``severity:``, like KoSIT's ``customLevel``). See docs/validation.md.

The report is plain tuples of frozen dataclasses: it travels back from intake processes
pickled, and is the same object behind the API's problem, ``validate --format json|text``
and the status of an accepted submission. It sits below ``errors`` in the layers because
``InvalidMessage`` and the other intake errors carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import JsonValue

Severity = Literal["error", "warning", "information"]
Outcome = Literal["passed", "failed", "skipped"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "information")

WELL_FORMED = "well-formedness"
XSD = "xsd"


@dataclass(frozen=True, slots=True)
class Finding:
    step: str
    severity: Severity
    code: str
    path: str
    line: int | None
    column: int | None
    message: str

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "step": self.step,
            "severity": self.severity,
            "code": self.code,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Step:
    """One validation step: ``well-formedness``, ``xsd`` or ``schematron:<file name>``."""

    name: str
    outcome: Outcome
    reason: str | None = None
    """Why it was skipped, or what stopped it (a rule set that failed to run)."""

    def to_json(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {"name": self.name, "outcome": self.outcome}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True)
class ValidationReport:
    sha256: str
    """Of the XML document as received. Intake leaves it empty on a report without
    findings (the accept path hashes the body anyway; ``pipeline.with_sha256``)."""
    schema_set: str | None
    steps: tuple[Step, ...]
    findings: tuple[Finding, ...] = ()

    @property
    def accepted(self) -> bool:
        """No error finding and no failed step."""
        return all(s.outcome != "failed" for s in self.steps) and not any(
            f.severity == "error" for f in self.findings
        )

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def failed_step(self) -> Step | None:
        return next((s for s in self.steps if s.outcome == "failed"), None)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "accepted": self.accepted,
            "sha256": self.sha256,
            "schema_set": self.schema_set,
            "steps": [s.to_json() for s in self.steps],
            "findings": [f.to_json() for f in self.findings],
        }

    def text(self, name: str = "") -> str:
        """The report for people: verdict, steps, then one ``name:line:column`` line per
        finding (editors jump to it)."""
        counts = self.counts()
        verdict = "accepted" if self.accepted else "rejected"
        lines = [
            f"{name}: {verdict} (schema set {self.schema_set or '-'}; {counts['error']} "
            f"errors, {counts['warning']} warnings, {counts['information']} information)",
            f"  sha256 {self.sha256}",
        ]
        for step in self.steps:
            reason = f": {step.reason}" if step.reason else ""
            lines.append(f"  {step.outcome:<7} {step.name}{reason}")
        for f in self.findings:
            where = f"{name}:{f.line or 0}:{f.column or 0}"
            lines.append(f"{where}: {f.severity} [{f.code}] {f.path}: {f.message}")
        return "\n".join(lines)


def override(severity: Severity, code: str, overrides: dict[str, Severity] | None) -> Severity:
    if overrides is None:
        return severity
    return overrides.get(code, severity)
