"""The fixed, seeded workload: the shipped valid samples with fresh nachrichtenUUIDs.

Request ``i`` of a seed is always the same bytes: the sample, the UUID and whether it goes
as ``multipart/form-data`` with an attachment are drawn from ``random.Random(seed)`` in
order, so every run (and the bare reference) sends exactly the same sequence.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = sorted((REPO / "schemas" / "samples").glob("*/valid/*.xml"))
SENDER_TOKEN = "demo-sender-token"
UUID_ELEMENT = re.compile(rb"(<(?:\w+:)?nachrichtenUUID>)[^<]+(</)")

ATTACHMENT_SHARE = 0.10
"""Share of submissions sent as multipart with one attachment (a scanned PDF, say)."""
ATTACHMENT_SIZES = (20_000, 200_000)
ATTACHMENT_POOL = 8
"""Distinct attachment contents; the blob store deduplicates them, as it would in real life."""
BOUNDARY = "xoevbench7d3f1c2a9b"


@dataclass(frozen=True)
class Request:
    content_type: str
    body: bytes
    message_uuid: str
    multipart: bool


def with_uuid(template: bytes, message_uuid: str) -> bytes:
    body, count = UUID_ELEMENT.subn(rb"\g<1>" + message_uuid.encode() + rb"\g<2>", template, 1)
    if count != 1:
        raise ValueError("sample has no nachrichtenUUID")
    return body


def multipart_body(xml: bytes, attachment: bytes, name: str) -> bytes:
    b = BOUNDARY.encode()
    return b"".join(
        [
            b"--" + b + b"\r\n",
            b'Content-Disposition: form-data; name="message"; filename="message.xml"\r\n',
            b"Content-Type: application/xml\r\n\r\n",
            xml,
            b"\r\n--" + b + b"\r\n",
            f'Content-Disposition: form-data; name="attachment"; filename="{name}"\r\n'.encode(),
            b"Content-Type: application/pdf\r\n\r\n",
            attachment,
            b"\r\n--" + b + b"--\r\n",
        ]
    )


def requests(seed: int, attachment_share: float = ATTACHMENT_SHARE) -> Iterator[Request]:
    """An endless, deterministic sequence of distinct valid submissions."""
    rng = random.Random(seed)
    templates = [p.read_bytes() for p in SAMPLES]
    pool = [
        (f"scan-{i}.pdf", b"%PDF-1.7\n" + rng.randbytes(rng.randint(*ATTACHMENT_SIZES)))
        for i in range(ATTACHMENT_POOL)
    ]
    while True:
        template = rng.choice(templates)
        message_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        xml = with_uuid(template, message_uuid)
        if rng.random() < attachment_share:
            name, data = rng.choice(pool)
            yield Request(
                f"multipart/form-data; boundary={BOUNDARY}",
                multipart_body(xml, data, name),
                message_uuid,
                True,
            )
        else:
            yield Request("application/xml", xml, message_uuid, False)


def documents(seed: int, count: int) -> list[bytes]:
    """``count`` distinct XML documents (no attachments), for in-process scenarios."""
    gen = requests(seed, attachment_share=0.0)
    return [next(gen).body for _ in range(count)]
