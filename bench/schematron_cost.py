"""Per-message cost of the Schematron step, next to the XSD step it follows.

    .venv/bin/python bench/schematron_cost.py [iterations]

Measures ``Schematron.check`` (serialise the parsed tree, Saxon parses it, runs the
compiled stylesheet, findings are mapped to XPath and line) for the shipped Hundesteuer
sample and, when ../shared/xoev is present, for the XBau 2.6 Bauantrag against both XBau
rule sets. Compile time (once per rule set, at start-up) is printed too.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from gateway.intake.registry import SchemaRegistry
from gateway.intake.safe_xml import parse_untrusted
from gateway.intake.schematron import Schematron, SchematronCompiler

REPO = Path(__file__).resolve().parents[1]
XBAU = REPO.parent / "shared" / "xoev" / "xbau-2.6"


def timed(fn: Callable[[], object], iterations: int) -> tuple[float, float]:
    for _ in range(min(50, iterations)):  # warm-up: Saxon's JIT and caches
        fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.95)] * 1000


def report(name: str, body: bytes, xsd: etree.XMLSchema, rules: list[Schematron], n: int) -> None:
    tree = parse_untrusted(body)
    assert xsd.validate(tree), xsd.error_log
    findings = [f for r in rules for f in r.check(tree)]
    xsd_med, xsd_p95 = timed(lambda: xsd.validate(tree), n)
    sch_med, sch_p95 = timed(lambda: [r.check(tree) for r in rules], n)
    print(
        f"{name:<34} {len(body) / 1024:6.1f} KiB  XSD {xsd_med:6.2f} ms (p95 {xsd_p95:6.2f})"
        f"  Schematron {sch_med:6.2f} ms (p95 {sch_p95:6.2f})  findings {len(findings)}"
    )


def compile_timed(compiler: SchematronCompiler, path: Path) -> Schematron:
    start = time.perf_counter()
    rules = compiler.compile(path)
    print(f"compile {path.name:<40} {(time.perf_counter() - start) * 1000:7.1f} ms (once)")
    return rules


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    compiler = SchematronCompiler()
    schemas = REPO / "schemas"
    compile_timed(compiler, schemas / "hundesteuer" / "hundesteuer.sch")
    shipped = SchemaRegistry.load([schemas]).find("hundesteuer.anmeldung.0101")
    assert shipped is not None
    xbau = None
    if XBAU.is_dir():
        for name in ("xbau-schematron.sch", "xbau-schematron-leere-elemente.sch"):
            compile_timed(compiler, XBAU / name)
        catalog = Path(tempfile.mkdtemp()) / "catalog.yaml"
        catalog.write_text(
            "schema_sets:\n  - id: xbau-2.6\n    namespace: http://www.xleitstelle.de/xbau/2/6\n"
            f"    schema: {XBAU / 'xbau-nachrichten-baugenehmigung.xsd'}\n"
            "    messages: [baugenehmigung.antrag.0200]\n"
            f"    schematron: [{XBAU / 'xbau-schematron.sch'}, "
            f"{XBAU / 'xbau-schematron-leere-elemente.sch'}]\n",
            encoding="utf-8",
        )
        xbau = SchemaRegistry.load([catalog.parent]).find("baugenehmigung.antrag.0200")
    print(f"\n{n} iterations per row, median and 95th percentile per message")
    body = (schemas / "samples" / "hundesteuer" / "valid" / "anmeldung-stuttgart.xml").read_bytes()
    report("hundesteuer anmeldung-stuttgart", body, shipped.schema, list(shipped.rules), n)
    if xbau is not None:
        body = (REPO / "tests" / "data" / "xbau" / "baugenehmigung.antrag.0200.xml").read_bytes()
        report("xbau baugenehmigung.antrag.0200", body, xbau.schema, list(xbau.rules), n)
    else:
        print(f"XBau skipped: {XBAU} not present")


if __name__ == "__main__":
    main()
