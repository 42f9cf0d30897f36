"""Distinct valid messages from the shipped samples (a fresh nachrichtenUUID each)."""

from __future__ import annotations

import re
import uuid

from tests.conftest import sample

UUID_ELEMENT = re.compile(rb"(<(?:\w+:)?nachrichtenUUID>)[^<]+(</)")


def with_new_uuid(body: bytes) -> tuple[str, bytes]:
    new = str(uuid.uuid4())
    replaced, count = UUID_ELEMENT.subn(rb"\g<1>" + new.encode() + rb"\g<2>", body, count=1)
    assert count == 1, "sample has no nachrichtenUUID"
    return new, replaced


def fresh(relative: str) -> bytes:
    return with_new_uuid(sample(relative))[1]
