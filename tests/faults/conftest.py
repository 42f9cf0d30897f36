"""A real ``serve`` process on SQLite or on PostgreSQL, and multipart bodies built by hand
(httpx percent-encodes control characters in file names; these tests need the raw bytes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.gateway_process import GatewayProcess, gateway_env
from tests.support.services import postgres_database, unique

SENDER = {"Authorization": "Bearer demo-sender-token"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'gateway.db'}"
        return
    async with postgres_database() as url:
        yield url


@pytest.fixture
def serve(
    request: pytest.FixtureRequest, tmp_path: Path, config_dir: Path, database_url: str
) -> Iterator[GatewayProcess]:
    """``serve`` on the store of ``database_url``: SQLite with the embedded queue, or
    PostgreSQL with RabbitMQ (the embedded queue lives in the SQLite file)."""
    extra = {"XOEV_GATEWAY_DATABASE_URL": database_url, "XOEV_GATEWAY_POLL_SECONDS": "0.2"}
    if not database_url.startswith("sqlite"):
        extra |= {
            "XOEV_GATEWAY_BROKER": "rabbitmq",
            "XOEV_GATEWAY_AMQP_URL": request.getfixturevalue("amqp_url"),
            "XOEV_GATEWAY_RABBITMQ_PREFIX": unique("faults"),
        }
    proc = GatewayProcess(
        "serve", gateway_env(tmp_path / "data", config_dir, **extra), tmp_path / "serve.log"
    )
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def multipart(
    xml: bytes, parts: list[Part], boundary: bytes = b"fault-b0undary"
) -> tuple[bytes, dict[str, str]]:
    """A multipart body: the XML as ``message``, then ``parts`` as ``(Content-Disposition
    value, Content-Type value or None, data)``; returns the body and its headers."""
    chunks = [
        b"--" + boundary + b"\r\n",
        b'Content-Disposition: form-data; name="message"; filename="antrag.xml"\r\n',
        b"Content-Type: application/xml\r\n\r\n" + xml + b"\r\n",
    ]
    for disposition, content_type, data in parts:
        chunks.append(b"--" + boundary + b"\r\nContent-Disposition: " + disposition + b"\r\n")
        if content_type is not None:
            chunks.append(b"Content-Type: " + content_type + b"\r\n")
        chunks.append(b"\r\n" + data + b"\r\n")
    chunks.append(b"--" + boundary + b"--\r\n")
    headers = {**SENDER, "Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}
    return b"".join(chunks), headers


Part = tuple[bytes, bytes | None, bytes]


def attachment(
    filename: bytes, data: bytes, content_type: bytes | None = b"application/pdf"
) -> Part:
    return (b'form-data; name="attachment"; filename="' + filename + b'"', content_type, data)
