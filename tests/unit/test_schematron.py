from __future__ import annotations

import hashlib
import pickle
import shutil
from pathlib import Path

import pytest

from gateway.errors import InvalidMessage, SchemaRegistryError
from gateway.intake.pipeline import check
from gateway.intake.registry import SchemaRegistry
from gateway.intake.safe_xml import parse_untrusted
from gateway.intake.schematron import Finding, SchematronCompiler
from gateway.municipality import MunicipalityDirectory, RecipientResolver
from gateway.settings import SHIPPED_SCHEMAS
from tests.conftest import XBAU_DIR, sample

XBAU_INSTANCE = Path(__file__).parents[1] / "data" / "xbau" / "baugenehmigung.antrag.0200.xml"

HEAD = (
    '<sch:schema xmlns:sch="http://purl.oclc.org/dsdl/schematron" queryBinding="xslt2">'
    '<sch:ns prefix="o" uri="urn:order"/>'
)

ORDER = b"""<o:order xmlns:o="urn:order" total="30">
  <o:item price="10" qty="1">Apfel</o:item>
  <o:item price="20" qty="0">Birne</o:item>
</o:order>"""


@pytest.fixture(scope="module")
def compiler() -> SchematronCompiler:
    return SchematronCompiler()


def run(
    compiler: SchematronCompiler, tmp_path: Path, body: str, xml: bytes = ORDER
) -> list[Finding]:
    path = tmp_path / "rules.sch"
    path.write_text(HEAD + body + "</sch:schema>", encoding="utf-8")
    return compiler.compile(path).check(parse_untrusted(xml))


def ids(findings: list[Finding]) -> list[str]:
    return [f.id for f in findings]


# ---------------------------------------------------------------- semantics


def test_only_the_first_matching_rule_of_a_pattern_fires(
    compiler: SchematronCompiler, tmp_path: Path
) -> None:
    findings = run(
        compiler,
        tmp_path,
        "<sch:pattern>"
        '<sch:rule context="o:item[@qty = 0]"><sch:report id="first" test="true()">a</sch:report></sch:rule>'
        '<sch:rule context="o:item"><sch:report id="second" test="true()">b</sch:report></sch:rule>'
        "</sch:pattern>"
        "<sch:pattern>"
        '<sch:rule context="o:item"><sch:report id="other-pattern" test="true()">c</sch:report></sch:rule>'
        "</sch:pattern>",
    )
    # Apfel: qty 1, so the second rule; Birne: the first rule only; every item in pattern 2.
    assert ids(findings) == ["second", "first", "other-pattern", "other-pattern"]


def test_assert_fires_when_false_report_when_true(
    compiler: SchematronCompiler, tmp_path: Path
) -> None:
    findings = run(
        compiler,
        tmp_path,
        '<sch:pattern><sch:rule context="o:item">'
        '<sch:assert id="positive-qty" test="@qty > 0">no quantity</sch:assert>'
        '<sch:report id="pear" test=". = \'Birne\'">a pear</sch:report>'
        "</sch:rule></sch:pattern>",
    )
    assert [(f.id, f.kind) for f in findings] == [("positive-qty", "assert"), ("pear", "report")]
    assert all(f.path == "/o:order[1]/o:item[2]" for f in findings)


def test_abstract_rules_are_inserted_by_extends_with_their_lets(
    compiler: SchematronCompiler, tmp_path: Path
) -> None:
    findings = run(
        compiler,
        tmp_path,
        "<sch:pattern>"
        '<sch:rule id="base" abstract="true">'
        '<sch:let name="p" value="xs:decimal(@price)"/>'
        '<sch:assert id="cheap" test="$p lt 15">price <sch:value-of select="$p"/></sch:assert>'
        "</sch:rule>"
        '<sch:rule id="middle" abstract="true"><sch:extends rule="base"/>'
        '<sch:assert test="@qty">qty missing</sch:assert></sch:rule>'
        '<sch:rule context="o:item"><sch:extends rule="middle"/></sch:rule>'
        "</sch:pattern>",
    )
    (finding,) = findings
    assert (finding.id, finding.message, finding.path) == (
        "cheap",
        "price 20",
        "/o:order[1]/o:item[2]",
    )


def test_schema_and_rule_lets_and_message_content(
    compiler: SchematronCompiler, tmp_path: Path
) -> None:
    findings = run(
        compiler,
        tmp_path,
        '<sch:let name="sum" value="sum(//o:item/(@price * @qty))"/>'
        '<sch:pattern id="totals"><sch:rule id="rule-total" context="o:order">'
        '<sch:let name="total" value="xs:decimal(@total)"/>'
        '<sch:assert test="$total = $sum">\n   <sch:name/> total <sch:value-of select="$total"/>\n'
        '   is not the <sch:emph>sum</sch:emph> <sch:value-of select="$sum"/> of its'
        ' <sch:name path="o:item[1]"/>s.</sch:assert>'
        "</sch:rule></sch:pattern>",
    )
    (finding,) = findings
    assert finding.id == "rule-total"  # no assert id: the rule's
    assert finding.message == "o:order total 30 is not the sum 10 of its o:items."
    assert (finding.path, finding.line) == ("/o:order[1]", 1)


def test_locations_of_attributes_and_undeclared_namespaces(
    compiler: SchematronCompiler, tmp_path: Path
) -> None:
    xml = b'<r xmlns="urn:plain">\n<x:e xmlns:x="urn:x"\n a="1"/>\n<n:e xmlns:n="urn:n"/></r>'
    findings = run(
        compiler,
        tmp_path,
        '<sch:pattern><sch:rule context="@a | *:e[2]">'
        '<sch:report id="seen" test="true()">seen</sch:report></sch:rule></sch:pattern>',
        xml,
    )
    paths = [(f.path, f.line) for f in findings]
    # Namespaces without a Schematron or root-element prefix get made-up ones; the line of
    # an attribute is its element's, which libxml2 counts where the start tag ends.
    assert paths == [("/ns2:r[1]/ns3:e[1]/@a", 3), ("/ns2:r[1]/ns4:e[1]", 4)]


def test_warnings_and_infos_do_not_block() -> None:
    def finding(role: str | None, flag: str | None) -> Finding:
        return Finding("x", "report", "m", "/", None, role, flag)

    assert finding(None, None).blocking
    assert finding("error", "fatal").blocking
    assert not finding("warning", None).blocking
    assert not finding(None, "INFO").blocking


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ('<sch:include href="other.sch"/>', "<sch:include>"),
        ('<sch:pattern abstract="true" id="a"/>', '<sch:pattern id="a"> has attribute abstract'),
        ('<sch:pattern is-a="a"/>', "has attribute is-a"),
        (
            '<sch:pattern><sch:rule context="*"><sch:extends href="x.sch"/></sch:rule></sch:pattern>',
            "<sch:extends> has attribute href",
        ),
        (
            '<sch:pattern><sch:rule context="*"><sch:extends rule="nope"/></sch:rule></sch:pattern>',
            'names no abstract rule "nope"',
        ),
        ('<sch:pattern><sch:let name="v" value="1"/></sch:pattern>', "<sch:let>"),
        ('<sch:let name="v">1</sch:let>', "content-valued let"),
        (
            '<sch:pattern><sch:rule context="*"><sch:assert test="1" diagnostics="d">m'
            "</sch:assert></sch:rule></sch:pattern>",
            "diagnostics",
        ),
        (
            '<xsl:function xmlns:xsl="http://www.w3.org/1999/XSL/Transform" name="o:f"/>',
            "embedded XSLT",
        ),
        (
            "<sch:pattern><sch:rule><sch:assert test='1'>m</sch:assert></sch:rule></sch:pattern>",
            "needs a context",
        ),
    ],
)
def test_constructs_outside_the_subset_are_refused_with_file_and_element(
    compiler: SchematronCompiler, tmp_path: Path, body: str, named: str
) -> None:
    with pytest.raises(SchemaRegistryError, match="rules.sch:1: ") as info:
        run(compiler, tmp_path, body)
    assert named in info.value.detail


@pytest.mark.parametrize(
    ("head", "named"),
    [
        ('queryBinding="xslt"', 'queryBinding="xslt"'),
        ('queryBinding="xslt2" defaultPhase="quick"', "only #ALL"),
    ],
)
def test_other_query_bindings_and_phases_are_refused(
    compiler: SchematronCompiler, tmp_path: Path, head: str, named: str
) -> None:
    path = tmp_path / "rules.sch"
    path.write_text(
        f'<sch:schema xmlns:sch="http://purl.oclc.org/dsdl/schematron" {head}/>', encoding="utf-8"
    )
    with pytest.raises(SchemaRegistryError, match=named):
        compiler.compile(path)


def test_a_bad_xpath_is_refused_naming_the_schematron_line_and_element(
    compiler: SchematronCompiler, tmp_path: Path
) -> None:
    path = tmp_path / "rules.sch"
    path.write_text(
        HEAD + "\n<sch:pattern>\n<sch:rule context='o:item'>\n"
        '<sch:assert id="broken" test="count(o:item"/>\n</sch:rule></sch:pattern></sch:schema>',
        encoding="utf-8",
    )
    with pytest.raises(SchemaRegistryError) as info:
        compiler.compile(path)
    assert f'{path}:4: <sch:assert id="broken">' in info.value.detail
    assert "XPST0003" in info.value.detail


# ---------------------------------------------------------------- registry and pipeline


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.load([SHIPPED_SCHEMAS])


def test_shipped_rule_violation_maps_to_id_xpath_and_line(registry: SchemaRegistry) -> None:
    tree = parse_untrusted(sample("hundesteuer/invalid/rule-violation.xml"))
    with pytest.raises(
        InvalidMessage, match="1 business-rule violation against hundesteuer-1.0"
    ) as info:
        registry.identify(tree.getroot()).validate(tree)
    (error,) = info.value.errors
    assert error.path == "/hs:hundesteuer.anmeldung.0101[1]/hs:haltungBeginn[1]"
    assert error.line == 67
    assert error.message == (
        "[sch-hs-001] Der Beginn der Haltung (2025-04-18) liegt vor dem Geburtsdatum des "
        "Hundes (2025-05-02)."
    )


def test_rules_run_on_schema_invalid_messages_too(registry: SchemaRegistry) -> None:
    body = sample("hundesteuer/invalid/rule-violation.xml").replace(b">70197<", b">7019<")
    tree = parse_untrusted(body)
    with pytest.raises(
        InvalidMessage, match="1 schema violation and 1 business-rule violation"
    ) as info:
        registry.identify(tree.getroot()).validate(tree, body)
    report = info.value.report
    assert report is not None and not report.accepted
    assert [(s.name, s.outcome) for s in report.steps] == [
        ("well-formedness", "passed"),
        ("xsd", "failed"),
        ("schematron:hundesteuer.sch", "failed"),
    ]
    assert [(f.step, f.code, f.line) for f in report.findings] == [
        ("xsd", "SCHEMAV_CVC_PATTERN_VALID", 44),
        ("schematron:hundesteuer.sch", "sch-hs-001", 67),
    ]
    assert report.sha256 == hashlib.sha256(body).hexdigest()
    assert [e.message[:12] for e in info.value.errors] == [
        report.findings[0].message[:12],
        "[sch-hs-001]",
    ]


def test_a_rule_set_that_cannot_run_on_a_schema_invalid_tree_is_skipped_with_the_cause(
    registry: SchemaRegistry,
) -> None:
    # sch-hs-001 casts the dog's birth date with xs:date(): Saxon fails on "gestern".
    body = sample("hundesteuer/valid/anmeldung-stuttgart.xml")
    start = body.index(b"<hs:geburtsdatum>") + len(b"<hs:geburtsdatum>")
    body = body[:start] + b"gestern" + body[body.index(b"<", start) :]
    tree = parse_untrusted(body)
    with pytest.raises(InvalidMessage, match="1 schema violation against") as info:
        registry.identify(tree.getroot()).validate(tree, body)
    report = info.value.report
    assert report is not None
    step = report.steps[-1]
    assert step.outcome == "skipped" and step.reason is not None
    assert step.reason.startswith("cannot run on this schema-invalid document: Schematron")
    assert 'Invalid date "gestern"' in step.reason


def test_report_travels_pickled_and_small(registry: SchemaRegistry) -> None:
    body = sample("hundesteuer/invalid/rule-violation.xml")
    tree = parse_untrusted(body)
    with pytest.raises(InvalidMessage) as info:
        registry.identify(tree.getroot()).validate(tree, body)
    frame = pickle.dumps(info.value, protocol=pickle.HIGHEST_PROTOCOL)
    assert len(frame) < 2000
    again = pickle.loads(frame)
    assert again.report == info.value.report and again.errors == info.value.errors


def test_severity_override_turns_an_error_into_a_warning(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED_SCHEMAS, tmp_path / "s", symlinks=False)
    catalog = tmp_path / "s" / "catalog.yaml"
    text = catalog.read_text(encoding="utf-8").replace(
        "schematron: [hundesteuer/hundesteuer.sch]",
        "schematron: [hundesteuer/hundesteuer.sch]\n    severity: {sch-hs-001: warning}",
    )
    catalog.write_text(text, encoding="utf-8")
    registry = SchemaRegistry.load([tmp_path / "s"])
    body = sample("hundesteuer/invalid/rule-violation.xml")
    tree = parse_untrusted(body)
    report = registry.identify(tree.getroot()).validate(tree, body)
    assert report.accepted
    ((severity, code),) = [(f.severity, f.code) for f in report.findings]
    assert (severity, code) == ("warning", "sch-hs-001")


def test_listenhund_without_chip_breaks_its_rule(registry: SchemaRegistry) -> None:
    body = sample("hundesteuer/valid/anmeldung-stuttgart.xml")
    body = body.replace(b"<hs:listenhund>false", b"<hs:listenhund>true")
    body = body.replace(b"<hs:transpondernummer>276098106543217</hs:transpondernummer>", b"")
    tree = parse_untrusted(body)
    with pytest.raises(InvalidMessage) as info:
        registry.identify(tree.getroot()).validate(tree)
    (error,) = info.value.errors
    assert error.message.startswith("[sch-hs-003] Ein Listenhund (Bruno)")
    assert error.path == "/hs:hundesteuer.anmeldung.0101[1]/hs:hund[1]"


def test_pipeline_check_reports_rule_violations_as_422(registry: SchemaRegistry) -> None:
    directory = MunicipalityDirectory.load(SHIPPED_SCHEMAS / "codelists" / "ags.tsv")
    resolver = RecipientResolver(directory, {})
    check(sample("hundesteuer/valid/anmeldung-stuttgart.xml"), registry, resolver)
    with pytest.raises(InvalidMessage) as info:
        check(sample("hundesteuer/invalid/rule-violation.xml"), registry, resolver)
    assert info.value.status == 422
    assert info.value.errors[0].message.startswith("[sch-hs-001]")


def test_broken_rule_set_is_refused_at_load_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "s.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t">'
        '<xs:element name="r"/></xs:schema>'
    )
    (tmp_path / "bad.sch").write_text(
        HEAD + '<sch:pattern><sch:rule context="o:*["><sch:assert test="1">m</sch:assert>'
        "</sch:rule></sch:pattern></sch:schema>"
    )
    (tmp_path / "catalog.yaml").write_text(
        "schema_sets:\n  - {id: t, namespace: 'urn:t', schema: s.xsd, schematron: [bad.sch]}\n"
    )
    with pytest.raises(
        SchemaRegistryError, match=r"schema set t: Schematron .*bad\.sch:1: <sch:rule>"
    ):
        SchemaRegistry.load([tmp_path])


def test_warning_role_findings_pass_validation(tmp_path: Path) -> None:
    (tmp_path / "s.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:order">'
        '<xs:element name="order"/></xs:schema>'
    )
    (tmp_path / "w.sch").write_text(
        HEAD + '<sch:pattern><sch:rule context="o:order">'
        '<sch:report role="warning" test="true()">just saying</sch:report>'
        "</sch:rule></sch:pattern></sch:schema>"
    )
    (tmp_path / "catalog.yaml").write_text(
        "schema_sets:\n  - {id: o, namespace: 'urn:order', schema: s.xsd, schematron: [w.sch]}\n"
    )
    tree = parse_untrusted(ORDER)
    SchemaRegistry.load([tmp_path]).identify(tree.getroot()).validate(tree)


# ---------------------------------------------------------------- XBau 2.6


@pytest.fixture
def xbau_rules_catalog(xbau_catalog: Path, tmp_path: Path) -> Path:
    """The XBau catalog of conftest (which skips without shared/xoev), with both rule sets."""
    directory = tmp_path / "xbau-rules"
    directory.mkdir()
    text = (xbau_catalog / "catalog.yaml").read_text(encoding="utf-8")
    text += (
        f"    schematron: [{XBAU_DIR / 'xbau-schematron.sch'}, "
        f"{XBAU_DIR / 'xbau-schematron-leere-elemente.sch'}]\n"
    )
    (directory / "catalog.yaml").write_text(text, encoding="utf-8")
    return directory


def xbau_body() -> bytes:
    return XBAU_INSTANCE.read_bytes()


def test_xbau_rule_sets_compile_and_the_valid_instance_passes(xbau_rules_catalog: Path) -> None:
    registry = SchemaRegistry.load([xbau_rules_catalog])
    tree = parse_untrusted(xbau_body())
    schema_set = registry.identify(tree.getroot())
    assert [r.path.name for r in schema_set.rules] == [
        "xbau-schematron.sch",
        "xbau-schematron-leere-elemente.sch",
    ]
    schema_set.validate(tree)


def test_autor_kennung_outside_dvdv_format_breaks_sch_xbau_002(xbau_rules_catalog: Path) -> None:
    body = xbau_body().replace(
        b"<kennung>dbs:10000001</kennung>", b"<kennung>efa:bauantrag-online</kennung>"
    )
    tree = parse_untrusted(body)
    with pytest.raises(InvalidMessage) as info:
        SchemaRegistry.load([xbau_rules_catalog]).identify(tree.getroot()).validate(tree)
    assert [e.message[:14] for e in info.value.errors] == ["[sch-xbau-002]"]


def test_xbau_leser_kennung_outside_dvdv_format_breaks_sch_xbau_001(
    xbau_rules_catalog: Path,
) -> None:
    body = xbau_body().replace(b"<kennung>ags:08116049</kennung>", b"<kennung>ags:abc</kennung>")
    tree = parse_untrusted(body)
    with pytest.raises(InvalidMessage) as info:
        SchemaRegistry.load([xbau_rules_catalog]).identify(tree.getroot()).validate(tree)
    (error,) = info.value.errors
    assert error.message.startswith("[sch-xbau-001] Eine Behördenkennung im DVDV")
    assert error.path == "/xbau:baugenehmigung.antrag.0200[1]/nachrichtenkopf.g2g[1]"
    assert error.line == 13
    assert (
        tree.xpath(error.path, namespaces={"xbau": "http://www.xleitstelle.de/xbau/2/6"})[
            0
        ].sourceline
        == 13
    )


def test_xbau_schema_invalid_message_also_reports_sch_xbau_001(xbau_rules_catalog: Path) -> None:
    # A dateTime that is none and a leser kennung that breaks sch-xbau-001: the report has
    # both, each with its code.
    body = xbau_body().replace(b"<kennung>ags:08116049</kennung>", b"<kennung>ags:abc</kennung>")
    start = body.index(b"<erstellungszeitpunkt>") + len(b"<erstellungszeitpunkt>")
    body = body[:start] + b"gestern" + body[body.index(b"</erstellungszeitpunkt>") :]
    tree = parse_untrusted(body)
    with pytest.raises(InvalidMessage) as info:
        SchemaRegistry.load([xbau_rules_catalog]).identify(tree.getroot()).validate(tree, body)
    report = info.value.report
    assert report is not None
    assert [(f.step, f.code) for f in report.findings] == [
        ("xsd", "SCHEMAV_CVC_DATATYPE_VALID_1_2_1"),
        ("schematron:xbau-schematron.sch", "sch-xbau-001"),
    ]
    assert [s.outcome for s in report.steps] == ["passed", "failed", "failed", "passed"]


def test_xbau_empty_element_breaks_sch_xbau_gen_001(xbau_rules_catalog: Path) -> None:
    body = xbau_body().replace(
        b"<name>Stadt N\xc3\xbcrtingen, Baurechtsamt</name>", b"<name> </name>"
    )
    tree = parse_untrusted(body)
    with pytest.raises(InvalidMessage) as info:
        SchemaRegistry.load([xbau_rules_catalog]).identify(tree.getroot()).validate(tree)
    (error,) = info.value.errors
    assert error.message.startswith("[sch-xbau-gen-001]")
    assert (
        error.path == "/xbau:baugenehmigung.antrag.0200[1]/nachrichtenkopf.g2g[1]/leser[1]/name[1]"
    )
    assert error.line == 26


def test_a_dynamic_error_in_a_rule_is_a_registry_error_naming_the_file(
    compiler: SchematronCompiler, tmp_path: Path
) -> None:
    # A rule that cannot be evaluated is the rule set's fault, not the sender's: it is not
    # reported as an invalid message.
    with pytest.raises(SchemaRegistryError, match=r"rules\.sch failed at run time: Invalid date"):
        run(
            compiler,
            tmp_path,
            '<sch:pattern><sch:rule context="o:item">'
            '<sch:assert test="xs:date(.) gt current-date()">m</sch:assert>'
            "</sch:rule></sch:pattern>",
        )


# ---------------------------------------------------------------- process lifetime


def test_a_registry_freed_on_another_thread_does_not_end_the_process(tmp_path: Path) -> None:
    # saxonche releases a GraalVM isolate thread when its last processor is freed; freed on
    # another thread (the garbage collector runs wherever it runs), GraalVM used to exit the
    # whole process with status 99. In a child process, since that exit takes the caller too.
    import subprocess
    import sys
    import textwrap

    rules = tmp_path / "rules.sch"
    rules.write_text(
        HEAD + '<sch:pattern><sch:rule context="o:item">'
        '<sch:report id="r" test="@qty = 0">none</sch:report></sch:rule></sch:pattern>'
        "</sch:schema>",
        encoding="utf-8",
    )
    script = textwrap.dedent(
        f"""
        import threading
        from gateway.intake.safe_xml import parse_untrusted
        from gateway.intake.schematron import SchematronCompiler
        held = [SchematronCompiler().compile(__import__("pathlib").Path({str(rules)!r}))]
        assert [f.id for f in held[0].check(parse_untrusted({ORDER!r}))] == ["r"]
        thread = threading.Thread(target=held.clear)
        thread.start()
        thread.join()
        print("survived", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    fatal = [line for line in done.stderr.splitlines() if "Fatal error" in line][:1]
    assert (done.returncode, done.stdout.strip()) == (0, "survived"), fatal or done.stderr[-2000:]
