"""A large attachment, streamed from a generator: neither client nor server may hold it."""

from __future__ import annotations

import random
from collections.abc import Iterator

import httpx

from bench.workload import BOUNDARY, SENDER_TOKEN, documents

CHUNK = 256 * 1024


def _parts(xml: bytes, size: int, seed: int) -> tuple[bytes, bytes, int]:
    b = BOUNDARY.encode()
    head = b"".join(
        [
            b"--" + b + b"\r\n",
            b'Content-Disposition: form-data; name="message"; filename="message.xml"\r\n',
            b"Content-Type: application/xml\r\n\r\n",
            xml,
            b"\r\n--" + b + b"\r\n",
            b'Content-Disposition: form-data; name="attachment"; filename="bauplan.pdf"\r\n',
            b"Content-Type: application/pdf\r\n\r\n",
        ]
    )
    tail = b"\r\n--" + b + b"--\r\n"
    return head, tail, len(head) + size + len(tail)


def _stream(head: bytes, tail: bytes, size: int, seed: int) -> Iterator[bytes]:
    yield head
    block = random.Random(seed).randbytes(CHUNK)
    sent = 0
    while sent < size:
        n = min(CHUNK, size - sent)
        # Vary the content a little so nothing along the way can shortcut it.
        yield sent.to_bytes(8, "big") + block[8:n] if n >= 8 else block[:n]
        sent += n
    yield tail


def upload(url: str, size: int, seed: int) -> int:
    """POST one submission with a ``size``-byte attachment; return the HTTP status."""
    xml = documents(seed + 1, 1)[0]
    head, tail, length = _parts(xml, size, seed)
    response = httpx.post(
        f"{url}/v1/submissions",
        content=_stream(head, tail, size, seed),
        headers={
            "Authorization": f"Bearer {SENDER_TOKEN}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(length),
        },
        timeout=300,
    )
    return response.status_code
