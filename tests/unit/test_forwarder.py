"""The forwarder that stands in for a service going away: what a process behind it sees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.forwarder import forwarding
from tests.support.gateway_process import free_port


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def _echo(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    answer = await reader.read(1024)
    writer.close()
    return answer


async def test_an_outage_drops_connections_refuses_new_ones_and_ends(echo_port: int) -> None:
    async with forwarding(free_port(), echo_port) as forwarder:
        assert await _echo(forwarder.port, b"before") == b"before"
        reader, writer = await asyncio.open_connection("127.0.0.1", forwarder.port)
        writer.write(b"held")
        assert await reader.read(1024) == b"held"
        async with forwarder.outage():
            assert await asyncio.wait_for(reader.read(1024), 5) == b""  # dropped
            with pytest.raises(ConnectionRefusedError):
                await _echo(forwarder.port, b"during")
        writer.close()
        assert await _echo(forwarder.port, b"after") == b"after"
        assert forwarder.outages == 1
