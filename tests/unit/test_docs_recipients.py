"""docs/recipients.md lists every prefix of the DVDV prefix code list."""

from __future__ import annotations

import pytest
from lxml import etree

from tests.conftest import SHARED_XOEV
from tests.support.gateway_process import REPO

DVDV_PREFIXES = SHARED_XOEV / "codelists" / "urn_xoev-de_bund_bmi_bit_codeliste_dvdv.praefix_9.xml"


def test_every_dvdv_prefix_is_documented() -> None:
    if not DVDV_PREFIXES.is_file():
        pytest.skip(f"{DVDV_PREFIXES} is not checked out")
    tree = etree.parse(str(DVDV_PREFIXES))
    prefixes = [
        v.findtext("SimpleValue")
        for v in tree.iterfind(".//SimpleCodeList/Row/Value")
        if v.get("ColumnRef") == "praefix"
    ]
    assert len(prefixes) == 13
    doc = (REPO / "docs" / "recipients.md").read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip().strip("`") for line in doc.splitlines() if line.startswith("| `")
    }
    assert set(prefixes) <= rows
