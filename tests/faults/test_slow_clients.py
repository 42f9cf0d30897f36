"""Slow clients against a real ``serve``: connections that trickle their headers or their
body are cut after the configured timeouts while honest submissions go through; an upload
at an honest pace outlasts the body timeout; the connection cap answers 503 problem+json."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import DEMO_SENDER_TOKEN
from tests.support.gateway_process import GatewayProcess, gateway_env
from tests.support.messages import fresh

AUTH = {"Authorization": f"Bearer {DEMO_SENDER_TOKEN}"}
XML = {**AUTH, "Content-Type": "application/xml"}
SAMPLE = "hundesteuer/valid/anmeldung-stuttgart.xml"
TIMEOUT = 2.0
ATTACKERS = 200


@pytest.fixture
def guarded(
    tmp_path: Path, config_dir: Path, request: pytest.FixtureRequest
) -> Iterator[GatewayProcess]:
    """``serve`` with short read timeouts (and what a test parametrizes on top)."""
    extra: dict[str, str] = getattr(request, "param", {})
    limits = {
        "XOEV_GATEWAY_HEADER_TIMEOUT": str(TIMEOUT),
        "XOEV_GATEWAY_BODY_TIMEOUT": str(TIMEOUT),
        "XOEV_GATEWAY_BODY_MIN_RATE": "500",
    }
    env = gateway_env(tmp_path / "data", config_dir, **{**limits, **extra})
    proc = GatewayProcess("serve", env, tmp_path / "serve.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


async def trickle(port: int, head: bytes, drip: bytes, give_up: float) -> float | None:
    """Send ``head``, then ``drip`` one byte every 0.25 s; seconds until the server closed
    the connection, or None if it was still open after ``give_up`` seconds."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        for i in range(len(drip)):
            if time.monotonic() - started > give_up:
                return None
            try:
                if await asyncio.wait_for(reader.read(1024), timeout=0.25) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                pass
            except ConnectionError:  # closed with data unread: a reset
                return time.monotonic() - started
            try:
                writer.write(drip[i : i + 1])
                await writer.drain()
            except ConnectionError:
                return time.monotonic() - started
        return None
    finally:
        writer.close()


def slow_headers() -> tuple[bytes, bytes]:
    return b"POST /v1/submissions HTTP/1.1\r\nHost: gateway\r\n", b"X-Slow: " + b"a" * 400


def slow_body() -> tuple[bytes, bytes]:
    body = fresh(SAMPLE)
    head = (
        b"POST /v1/submissions HTTP/1.1\r\nHost: gateway\r\n"
        + f"Authorization: Bearer {DEMO_SENDER_TOKEN}\r\n".encode()
        + b"Content-Type: application/xml\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    return head, body


async def honest(url: str, count: int) -> list[tuple[int, float]]:
    answers = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for _ in range(count):
            started = time.monotonic()
            resp = await client.post("/v1/submissions", content=fresh(SAMPLE), headers=XML)
            answers.append((resp.status_code, time.monotonic() - started))
            await asyncio.sleep(0.1)
    return answers


@pytest.mark.parametrize("kind", ["headers", "body"])
async def test_trickling_connections_are_cut_and_honest_ones_pass(
    guarded: GatewayProcess, kind: str
) -> None:
    assert guarded.port is not None
    head, drip = slow_headers() if kind == "headers" else slow_body()
    attack = [
        asyncio.create_task(trickle(guarded.port, head, drip, give_up=30)) for _ in range(ATTACKERS)
    ]
    await asyncio.sleep(0.5)
    answers = await honest(guarded.url, 20)
    cut = await asyncio.gather(*attack)

    held = [c for c in cut if c is None]
    assert not held, f"{len(held)} of {ATTACKERS} slow connections still open after 30 s"
    worst = max(c for c in cut if c is not None)
    # Header timeout: 2 s. Body: 2 s plus 1 s per 500 bytes (at most a few bytes here).
    assert worst < TIMEOUT + 2.0, worst
    assert [status for status, _ in answers] == [202] * len(answers)
    slowest = max(seconds for _, seconds in answers)
    print(
        f"\n{ATTACKERS} connections trickling {kind}: all cut after at most {worst:.2f} s; "
        f"{len(answers)} honest submissions meanwhile all 202, slowest {slowest * 1000:.0f} ms"
    )


async def test_an_upload_at_an_honest_pace_may_outlast_the_body_timeout(
    guarded: GatewayProcess,
) -> None:
    """~2 s beyond the body timeout, at 40 kB/s: the MinRate extension keeps it going."""
    xml = fresh(SAMPLE)
    boundary = b"slow-boundary"
    attachment = b"%PDF-" + b"x" * 160_000

    async def chunks() -> AsyncIterator[bytes]:
        yield b"--" + boundary + b'\r\nContent-Disposition: form-data; name="message"; '
        yield b'filename="m.xml"\r\nContent-Type: application/xml\r\n\r\n' + xml + b"\r\n"
        yield b"--" + boundary + b'\r\nContent-Disposition: form-data; name="scan"; '
        yield b'filename="scan.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
        for i in range(0, len(attachment), 8_000):
            await asyncio.sleep(0.2)
            yield attachment[i : i + 8_000]
        yield b"\r\n--" + boundary + b"--\r\n"

    headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=guarded.url, timeout=30) as client:
        resp = await client.post("/v1/submissions", content=chunks(), headers=headers)
    took = time.monotonic() - started
    assert resp.status_code == 202, resp.text
    assert took > TIMEOUT + 1


async def test_oversized_headers_are_refused(guarded: GatewayProcess) -> None:
    assert guarded.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: g\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize(
    "guarded",
    [{"XOEV_GATEWAY_MAX_CONNECTIONS": "20", "XOEV_GATEWAY_HEADER_TIMEOUT": "30"}],
    indirect=True,
)
async def test_above_the_connection_cap_requests_get_503_problem_json(
    guarded: GatewayProcess,
) -> None:
    assert guarded.port is not None
    idle = [await asyncio.open_connection("127.0.0.1", guarded.port) for _ in range(25)]
    await asyncio.sleep(0.2)
    async with httpx.AsyncClient(base_url=guarded.url, timeout=10) as client:
        over = await client.post("/v1/submissions", content=fresh(SAMPLE), headers=XML)
        for _, writer in idle:
            writer.close()
        await asyncio.sleep(0.5)
        under = await client.post("/v1/submissions", content=fresh(SAMPLE), headers=XML)
    assert over.status_code == 503
    assert over.headers["content-type"] == "application/problem+json"
    assert "connections" in over.json()["detail"]
    assert under.status_code == 202
