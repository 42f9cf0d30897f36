"""Hostile bodies against a real gateway process: right status, fast, bounded memory."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import DEMO_SENDER_TOKEN
from tests.support.gateway_process import GatewayProcess
from tests.unit.test_safe_xml import BILLION_LAUGHS

XML = {"Authorization": f"Bearer {DEMO_SENDER_TOKEN}", "Content-Type": "application/xml"}
# Stated bound: serving all hostile bodies below (several of them MBs) may raise the
# process's peak RSS by at most this much.
RSS_BOUND_MIB = 48

CASES: list[tuple[str, bytes, int, str]] = [
    ("billion-laughs", BILLION_LAUGHS, 400, "unsafe-xml"),
    (
        "external-entity",
        b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
        400,
        "unsafe-xml",
    ),
    ("external-dtd", b'<!DOCTYPE a SYSTEM "http://127.0.0.1:9/x.dtd"><a/>', 400, "unsafe-xml"),
    (
        "xinclude",
        b'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></a>',
        400,
        "unsafe-xml",
    ),
    ("deep-nesting", b"<a>" * 100_000 + b"</a>" * 100_000, 400, "malformed-xml"),
    ("not-xml", b"\x89PNG\r\n\x1a\n" + b"\0" * 5000, 400, "malformed-xml"),
    (
        "broken-utf8",
        b'<?xml version="1.0" encoding="UTF-8"?><a>\xc3\x28\xff</a>',
        400,
        "malformed-xml",
    ),
    ("wide-text", b"<a>" + b"x" * 9_000_000 + b"</a>", 422, "unknown-message-type"),
]


@pytest.fixture
def gateway_settings() -> dict[str, str]:
    return {
        "XOEV_GATEWAY_MAX_XML_BYTES": str(10 * 1024 * 1024),
        "XOEV_GATEWAY_MAX_BODY_BYTES": str(20 * 1024 * 1024),
    }


def test_hostile_bodies_are_refused_fast_with_bounded_memory(gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        client.post("/v1/submissions", content=b"<warm-up/>", headers=XML)
        before = gateway.peak_rss_kib()
        for name, body, status, slug in CASES:
            started = time.monotonic()
            resp = client.post("/v1/submissions", content=body, headers=XML)
            elapsed = time.monotonic() - started
            assert resp.status_code == status, (name, resp.text)
            assert resp.headers["content-type"] == "application/problem+json", name
            assert resp.json()["type"].endswith(f"/{slug}"), (name, resp.json())
            assert elapsed < 5, (name, elapsed)
        oversized = client.post(
            "/v1/submissions", content=b"<a>" + b"x" * (11 * 1024 * 1024) + b"</a>", headers=XML
        )
        assert oversized.status_code == 413 and oversized.json()["type"].endswith(
            "/payload-too-large"
        )

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while streaming
            yield (
                b'--x\r\nContent-Disposition: form-data; name="attachment"; filename="big.bin"\r\n'
                b"Content-Type: application/octet-stream\r\n\r\n"
            )
            for _ in range(25):
                yield b"y" * (1024 * 1024)

        streamed = client.post(
            "/v1/submissions",
            content=chunks(),
            headers={**XML, "Content-Type": "multipart/form-data; boundary=x"},
        )
        assert streamed.status_code == 413
        growth_mib = (gateway.peak_rss_kib() - before) / 1024
    assert growth_mib < RSS_BOUND_MIB, f"peak RSS grew by {growth_mib:.1f} MiB"
