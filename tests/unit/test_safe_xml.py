from __future__ import annotations

import pytest

from gateway.errors import MalformedXml, UnsafeXml
from gateway.intake.safe_xml import parse_untrusted

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<lolz>&lol4;</lolz>"""

HOSTILE = {
    "billion-laughs": (BILLION_LAUGHS, UnsafeXml, "DOCTYPE"),
    "external-entity": (
        b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
        UnsafeXml,
        "DOCTYPE",
    ),
    "external-dtd": (
        b'<?xml version="1.0"?><!DOCTYPE a SYSTEM "http://127.0.0.1:9/evil.dtd"><a/>',
        UnsafeXml,
        "DOCTYPE",
    ),
    "xinclude": (
        b'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></a>',
        UnsafeXml,
        "XInclude",
    ),
    "deep-nesting": (b"<a>" * 100_000 + b"</a>" * 100_000, MalformedXml, "nesting deeper"),
    "not-xml": (b"%PDF-1.7 this is not XML", MalformedXml, "Start tag expected"),
    "broken-utf8": (
        b'<?xml version="1.0" encoding="UTF-8"?><a>\xc3\x28</a>',
        MalformedXml,
        "encoding",
    ),
    "undeclared-entity": (b"<a>&boom;</a>", MalformedXml, "Entity 'boom' not defined"),
    "empty": (b"  \n", MalformedXml, "empty"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_is_refused_with_its_cause(name: str) -> None:
    body, error, fragment = HOSTILE[name]
    with pytest.raises(error) as info:
        parse_untrusted(body)
    assert fragment in info.value.detail


def test_doctype_after_comment_and_pi_is_still_found() -> None:
    body = b'<?xml version="1.0"?><!-- hi --><?pi x?><!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>'
    with pytest.raises(UnsafeXml):
        parse_untrusted(body)


def test_well_formed_document_parses() -> None:
    tree = parse_untrusted(b'<a xmlns="urn:x"><b>1</b><!-- <!DOCTYPE no> --></a>')
    assert tree.getroot().tag == "{urn:x}a"
